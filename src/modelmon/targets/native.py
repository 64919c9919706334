"""`modelmon up`: the app, Prometheus, Alertmanager and a local Slack receiver as child
processes on one machine, without Docker; with settings `replicas`/`shards`, a fleet of them
with VictoriaMetrics and vmalert as the global view (modelmon.targets.layout says how it is wired).

Each child logs to `<run>/logs/<name>.log`. If one dies, all are stopped and the log named;
Ctrl-C stops them all cleanly.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelmon.contract.routes import SLACK_PATH
from modelmon.model.reference import ReferenceProfile
from modelmon.settings import Settings
from modelmon.targets.host import StackError, check_port_free, find_binary
from modelmon.targets.layout import (
    ALERTMANAGER,
    APP,
    PROMETHEUS,
    RECEIVER,
    VICTORIA_METRICS,
    VMALERT,
    Instance,
    Layout,
    Part,
    layout_of,
    native_instances,
    part_named,
)
from modelmon.targets.prometheus import victoria_metrics_args, vmalert_args
from modelmon.targets.stack import render_stack


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    argv: list[str]


class NativeStack:
    """Start with `start()`, stop with `stop()`; or use as a context manager."""

    def __init__(self, model_dir: Path, profile: ReferenceProfile, settings: Settings, run_dir: Path,
                 collect: bool = False) -> None:
        """`collect`: the app is `modelmon collect` (the model is served elsewhere and logs its
        payloads here) instead of `modelmon serve`; the rest of the stack is the same."""
        self.model_dir = model_dir
        self.collect = collect
        self.profile = profile
        self.settings = settings
        self.run_dir = run_dir
        self.layout: Layout = layout_of(profile, run_dir)
        self.children: list[_Child] = []
        self._stopped: dict[str, list[str]] = {}
        self._instances: dict[str, Instance] = {}

    # -- addresses --------------------------------------------------------------------------
    def url(self, part: Part | str) -> str:
        """Where a part listens: `stack.url(APP)`, or by its name, `stack.url("app")`; in a
        fleet, the first replica or shard, or one by its name (`stack.url("app-3")`)."""
        if isinstance(part, str) and part in self._instances:
            return self._instances[part].url(self.settings)
        return (part_named(part) if isinstance(part, str) else part).url(self.settings)

    def instances(self, part: Part) -> list[Instance]:
        """The running processes of one part (the replicas of APP, the shards of PROMETHEUS)."""
        return [i for i in native_instances(self.settings) if i.part is part]

    @property
    def notifications_file(self) -> Path:
        return self.layout.notifications

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> NativeStack:
        s = self.settings
        layout = self.layout
        run = native_instances(s)
        binaries = {
            PROMETHEUS: find_binary("prometheus"),
            ALERTMANAGER: find_binary("prometheus-alertmanager", "alertmanager"),
        }
        if s.global_store:
            binaries[VICTORIA_METRICS] = find_binary("victoria-metrics")
            binaries[VMALERT] = find_binary("vmalert")
        for instance in run:
            check_port_free(s.host, instance.port(s), instance.name,
                            hint=f"set MODELMON_{instance.part.port_setting.upper()} to another port")
        render_stack(self.profile, s, self.run_dir, topology="native")
        if not s.slack_webhook_file:  # natively, "Slack" is the local receiver unless a file is set
            secret = layout.webhook_secret
            secret.parent.mkdir(parents=True, exist_ok=True)
            secret.write_text(f"{RECEIVER.url(s)}{SLACK_PATH}\n")
            secret.chmod(0o600)
        layout.logs.mkdir(exist_ok=True)
        # Children run in sessions of their own (Ctrl-C reaches us, not them); make sure they
        # never outlive this process, even when it exits without calling stop().
        atexit.register(self.stop)
        self._instances = {i.name: i for i in run}
        try:
            for instance in run:
                self._spawn(instance.name, self._argv(instance, binaries.get(instance.part, "")))
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _argv(self, instance: Instance, binary: str) -> list[str]:
        s = self.settings
        layout = self.layout
        python = [sys.executable, "-m", "modelmon"]
        part = instance.part
        if part is RECEIVER:
            return [*python, "receive", "--host", s.host, "--port", str(s.receiver_port),
                    "--log", str(layout.notifications)]
        if part is APP and self.collect:
            return [*python, "collect", "--model", str(self.model_dir), "--settings", str(layout.settings),
                    "--port", str(instance.port(s)), "--prediction-log", str(layout.prediction_log)]
        if part is APP:  # replicas share the prediction log, so /feedback finds any one's predictions
            return [*python, "serve", str(self.model_dir), "--settings", str(layout.settings),
                    "--port", str(instance.port(s)), "--prediction-log", str(layout.prediction_log)]
        if part is PROMETHEUS:
            return [
                binary,
                f"--config.file={layout.shard_config(instance)}",
                f"--storage.tsdb.path={layout.shard_data(instance) if instance.count > 1 else layout.prometheus_data}",
                f"--web.listen-address={instance.address(s)}",
                "--web.enable-lifecycle",
                # Firing alerts are re-sent this often, so a restarted Alertmanager hears of them.
                f"--rules.alert.resend-delay={s.group_interval}",
            ]
        if part is ALERTMANAGER:
            return [
                binary,
                f"--config.file={layout.alertmanager_config}",
                f"--storage.path={layout.alertmanager_data}",
                f"--web.listen-address={instance.address(s)}",
                "--cluster.listen-address=",  # one instance: no gossip port to collide with
            ]
        if part is VICTORIA_METRICS:
            return [binary, *victoria_metrics_args(s, layout)]
        if part is VMALERT:
            return [binary, *vmalert_args(s, layout)]
        raise ValueError(f"modelmon up does not run {part.name}")

    def _spawn(self, name: str, argv: list[str]) -> _Child:
        log = self.layout.log(name)
        with log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       cwd=self.run_dir, start_new_session=True)
        child = _Child(name, process, log, argv)
        self.children.append(child)
        return child

    def child(self, name: str) -> _Child:
        return next(c for c in self.children if c.name == name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Stop one part (for fault drills); `start_again` brings it back with the same arguments."""
        child = self.child(name)
        os.killpg(child.process.pid, sig)
        child.process.wait(30)
        self.children.remove(child)
        self._stopped[name] = child.argv

    def start_again(self, name: str, timeout: float = 60.0) -> None:
        self._spawn(name, self._stopped.pop(name))
        self._wait_ready(timeout, only=name)

    def _wait_ready(self, timeout: float, only: str | None = None) -> None:
        checks = {name: i.ready_url(self.settings) for name, i in self._instances.items()}
        deadline = time.monotonic() + timeout
        pending = {k: v for k, v in checks.items() if only is None or k == only}
        while pending:
            self.check_alive()
            for name, url in list(pending.items()):
                try:
                    if httpx.get(url, timeout=1.0).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise StackError(f"{', '.join(pending)} did not become ready within {timeout:.0f} s; "
                                 f"see the logs in {self.layout.logs}.")
            time.sleep(0.2)

    def check_alive(self) -> None:
        for child in self.children:
            code = child.process.poll()
            if code is not None:
                tail = child.log.read_text(errors="replace").strip().splitlines()[-3:]
                raise StackError(f"{child.name} exited with status {code}; its log is {child.log}"
                                 + (f" (last line: {tail[-1]})" if tail else "") + ".")

    def stop(self) -> None:
        atexit.unregister(self.stop)
        for child in reversed(self.children):
            if child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in self.children:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        self.children.clear()

    def run_until_interrupted(self) -> None:
        """Block until Ctrl-C or SIGTERM (then return), or until a child dies (StackError)."""

        def interrupt(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            while True:
                self.check_alive()
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
        finally:
            signal.signal(signal.SIGTERM, previous)

    def __enter__(self) -> NativeStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def urls(self) -> dict[str, str]:
        s = self.settings
        urls = {
            "app (API docs)": f"{self.url(APP)}/docs",
            "app metrics": f"{self.url(APP)}/metrics",
            "Prometheus": self.url(PROMETHEUS),
            "Prometheus alerts": f"{self.url(PROMETHEUS)}/alerts",
        }
        if s.replicas > 1:
            urls["app replicas"] = ", ".join(i.url(s) for i in self.instances(APP))
        if s.global_store:
            urls["Prometheus shards"] = ", ".join(i.url(s) for i in self.instances(PROMETHEUS))
            urls["global store (PromQL API)"] = VICTORIA_METRICS.url(s)
            if s.rules_in_vmalert:
                urls["vmalert (global rules, alerts)"] = f"{VMALERT.url(s)}/vmalert/alerts"
        urls["Alertmanager"] = self.url(ALERTMANAGER)
        urls["Slack stand-in (notifications)"] = str(self.notifications_file)
        return urls

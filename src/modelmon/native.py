"""`modelmon up`: the app, Prometheus, Alertmanager and a local Slack receiver as child
processes on one machine, without Docker.

Each child logs to `<run>/logs/<name>.log`. If one dies, all are stopped and the log named;
Ctrl-C stops them all cleanly.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from .profile import ReferenceProfile
from .settings import Settings
from .stack import render_stack

_INSTALL = "install it with `sudo apt-get install -y prometheus prometheus-alertmanager` (Debian/Ubuntu)"


class StackError(RuntimeError):
    """The native stack cannot start or stopped; the message says what to do."""


def find_binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise StackError(f"{names[0]} is not installed or not on PATH: {_INSTALL}.")


def check_port_free(host: str, port: int, what: str, hint: str | None = None) -> None:
    """Fail with one sentence when `port` is taken, before anything starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            hint = hint or f"set MODELMON_{what.upper()}_PORT to another port"
            raise StackError(f"Port {port} on {host} (for {what}) is in use: stop what runs there, or {hint}.") from None


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    argv: list[str]


class NativeStack:
    """Start with `start()`, stop with `stop()`; or use as a context manager."""

    def __init__(self, model_dir: Path, profile: ReferenceProfile, settings: Settings, run_dir: Path,
                 webhook_url: str | None = None) -> None:
        self.model_dir = model_dir
        self.profile = profile
        self.settings = settings
        self.run_dir = run_dir
        self.webhook_url = webhook_url
        self.children: list[_Child] = []
        self._stopped: dict[str, list[str]] = {}

    # -- addresses --------------------------------------------------------------------------
    def url(self, part: str) -> str:
        port = getattr(self.settings, f"{part}_port")
        return f"http://{self.settings.host}:{port}"

    @property
    def notifications_file(self) -> Path:
        return self.run_dir / "notifications.jsonl"

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "NativeStack":
        prometheus = find_binary("prometheus")
        alertmanager = find_binary("prometheus-alertmanager", "alertmanager")
        s = self.settings
        for what in ("app", "prometheus", "alertmanager", "receiver"):
            check_port_free(s.host, getattr(s, f"{what}_port"), what)
        render_stack(self.profile, s, self.run_dir, topology="native")
        secret = self.run_dir / "alertmanager" / "secrets" / "slack_webhook_url"
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text((self.webhook_url or f"{self.url('receiver')}/slack") + "\n")
        secret.chmod(0o600)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        # Children run in sessions of their own (Ctrl-C reaches us, not them); make sure they
        # never outlive this process, even when it exits without calling stop().
        atexit.register(self.stop)
        python = [sys.executable, "-m", "modelmon"]
        try:
            self._spawn("receiver", [*python, "receive", "--host", s.host, "--port", str(s.receiver_port),
                                     "--log", str(self.notifications_file)])
            self._spawn("app", [*python, "serve", str(self.model_dir), "--host", s.host, "--port", str(s.app_port),
                                "--prediction-log", str(self.run_dir / "predictions.sqlite")])
            self._spawn("prometheus", [
                prometheus,
                f"--config.file={self.run_dir / 'prometheus' / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.run_dir / 'prometheus-data'}",
                f"--web.listen-address={s.host}:{s.prometheus_port}",
                "--web.enable-lifecycle",
                # Firing alerts are re-sent this often, so a restarted Alertmanager hears of them.
                f"--rules.alert.resend-delay={s.group_interval}",
            ])
            self._spawn("alertmanager", [
                alertmanager,
                f"--config.file={self.run_dir / 'alertmanager' / 'alertmanager.yml'}",
                f"--storage.path={self.run_dir / 'alertmanager-data'}",
                f"--web.listen-address={s.host}:{s.alertmanager_port}",
                "--cluster.listen-address=",  # one instance: no gossip port to collide with
            ])
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str]) -> _Child:
        log = self.run_dir / "logs" / f"{name}.log"
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
        checks = {
            "receiver": f"{self.url('receiver')}/health",
            "app": f"{self.url('app')}/ready",
            "prometheus": f"{self.url('prometheus')}/-/ready",
            "alertmanager": f"{self.url('alertmanager')}/-/ready",
        }
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
                                 f"see the logs in {self.run_dir / 'logs'}.")
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

    def __enter__(self) -> "NativeStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def urls(self) -> dict[str, str]:
        return {
            "app (API docs)": f"{self.url('app')}/docs",
            "app metrics": f"{self.url('app')}/metrics",
            "Prometheus": self.url("prometheus"),
            "Prometheus alerts": f"{self.url('prometheus')}/alerts",
            "Alertmanager": self.url("alertmanager"),
            "Slack stand-in (notifications)": str(self.notifications_file),
        }

"""Helpers for tests that start real processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from modelmon.settings import load_settings
from modelmon.simulate.scenarios import Scenario, parse_scenario
from modelmon.simulate.simulator import Simulator
from modelmon.simulate.timeline import AlertWatcher
from modelmon.targets.host import free_port

REPO = Path(__file__).resolve().parents[2]


def wait_until(check, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


@contextmanager
def running(args: Sequence[str], ready_url: str | None = None, timeout: float = 60.0,
            env: dict[str, str] | None = None, cwd: Path = REPO) -> Iterator[subprocess.Popen]:
    """Run `python -m modelmon ARGS`, wait for ready_url, and always stop it (whole group)."""
    stem = Path(os.environ.get("TMPDIR", "/tmp")) / f"modelmon-test-{os.getpid()}-{time.monotonic_ns()}"
    log_path = Path(f"{stem}.log")
    log = open(log_path, "w+")  # noqa: SIM115 - closed when the process is stopped
    # Each server logs predictions to a file of its own unless the test says where.
    env = {"MODELMON_PREDICTION_LOG": f"{stem}-predictions.sqlite", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "modelmon", *args], cwd=cwd, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True)
    proc.log_path = log_path  # type: ignore[attr-defined] - what it printed, for the test to read
    try:
        if ready_url:
            def ready():
                if proc.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"modelmon {' '.join(args)} exited {proc.returncode}:\n{log.read()}")
                return httpx.get(ready_url, timeout=2).status_code == 200
            wait_until(ready, timeout, what=ready_url)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


TRAINING_INPUTS = {"items_count": {"normal": {"mean": 1782, "sd": 300}},
                   "customers_count": {"normal": {"mean": 786, "sd": 265}}}
TRAINING_TRUTH = {"linear": {"customers_count": 1}, "threshold": 965, "noise": 35}


def concept_drift(name: str, rate: float, share: float, delay: tuple[float, float], durations: tuple[str, str],
                  later_phases: Sequence[dict] = ()) -> Scenario:
    """The built-in concept-drift story at test scale: inputs as in training throughout, the
    truth's threshold moving from 965 to 700 customers in the second phase."""
    return parse_scenario({"name": name, "rate": rate, "feedback": {
        "share": share, "delay": {"uniform": {"low": delay[0], "high": delay[1]}}, "truth": TRAINING_TRUTH},
        "phases": [
            {"name": "normal", "duration": durations[0], "features": TRAINING_INPUTS},
            {"name": "concept drift", "duration": durations[1], "features": TRAINING_INPUTS,
             "feedback": {"truth": {**TRAINING_TRUTH, "threshold": 700}}},
            *later_phases,
        ]}, "test")


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@contextmanager
def native_stack(tmp_path_factory, model: Path | None = None, **overrides: str):
    """`modelmon up --profile demo` on free ports (of `model`, else the stores model); settings
    overridden by MODELMON_* variables."""
    run_dir = tmp_path_factory.mktemp("run")
    ports = {name: free_port() for name in ("app", "prometheus", "alertmanager", "receiver")}
    env = {f"MODELMON_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    env.update({f"MODELMON_{name.upper()}": value for name, value in overrides.items()})
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    args = ["up", "--profile", "demo", "--run-dir", str(run_dir), *(["--model", str(model)] if model else [])]
    with running(args, ready_url=f"{urls['alertmanager']}/-/ready", env=env, timeout=90):
        wait_until(lambda: httpx.get(f"{urls['app']}/ready").status_code == 200, what="app ready")
        wait_until(lambda: prom_query(urls["prometheus"], 'up{job="modelmon"} == 1'), timeout=30,
                   what="Prometheus scraping the app")
        yield {"urls": urls, "run_dir": run_dir, "settings": load_settings("demo", env=env)}


def prom_query(prometheus: str, expr: str) -> list[dict]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def play(stack, scenario, seed: int, wait_for: tuple[str, str], extra: float = 40.0):
    """Run the scenario with an AlertWatcher; afterwards wait for `wait_for` (alert, detail) to fire."""
    urls, run_dir = stack["urls"], stack["run_dir"]
    watcher = AlertWatcher(urls["prometheus"], run_dir / "notifications.jsonl").start()
    try:
        result = Simulator(urls["app"], scenario, seed=seed, show_progress=False).run()
        assert all(p.errors == 0 and p.dropped == 0 for p in result.phases)
        wait_until(lambda: any(e.kind == "firing" and (e.alert, e.detail) == wait_for for e in watcher.events),
                   timeout=extra, what=f"{wait_for} to fire")
        wait_until(lambda: any(e.kind == "notified" and e.alert == wait_for[0] for e in watcher.events),
                   timeout=30, what=f"the notification of {wait_for[0]}")
    finally:
        watcher.stop()
    return result, watcher.events

"""Helpers for tests that start real processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from modelmon.scenarios import Scenario, parse_scenario

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    log = open(f"{stem}.log", "w+")  # noqa: SIM115 - closed when the process is stopped
    # Each server logs predictions to a file of its own unless the test says where.
    env = {"MODELMON_PREDICTION_LOG": f"{stem}-predictions.sqlite", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "modelmon", *args], cwd=cwd, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True)
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

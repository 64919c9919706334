"""The library under gunicorn: the example app with 4 workers in prometheus_client's
multiprocess mode counts what `modelmon serve --workers 4` counts, value for value."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.test_monitor import _series

from .conftest import REPO, free_port, running, wait_until

pytestmark = pytest.mark.slow

STORES = REPO / "models" / "stores"


def _gunicorn_example(port: int, multiproc: Path, log: Path) -> subprocess.Popen[bytes]:
    multiproc.mkdir()
    env = {**os.environ, "MODEL_DIR": str(STORES), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "examples.own_fastapi_app:app", "-w", "4", "-k",
         "uvicorn.workers.UvicornWorker", "-b", f"127.0.0.1:{port}"],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def test_the_example_app_under_four_gunicorn_workers_counts_what_serve_counts(tmp_path):
    own_port, serve_port = free_port(), free_port()
    own_url, serve_url = f"http://127.0.0.1:{own_port}", f"http://127.0.0.1:{serve_port}"
    own = _gunicorn_example(own_port, tmp_path / "own-mp", tmp_path / "own.log")
    try:
        with running(["serve", str(STORES), "--port", str(serve_port), "--workers", "4",
                      "--multiproc-dir", str(tmp_path / "serve-mp"), "--prediction-log", "off"],
                     ready_url=f"{serve_url}/ready", timeout=120):
            wait_until(lambda: httpx.get(f"{own_url}/metrics").status_code == 200, timeout=120,
                       what="the example app under gunicorn")
            rng = np.random.default_rng(4)
            rows = [{"items_count": int(i), "customers_count": int(c)}
                    for i, c in zip(rng.normal(1782, 300, 400).round(), rng.normal(786, 265, 400).clip(0).round())]
            with httpx.Client(timeout=10) as client:
                for row in rows:  # one at a time, so every worker gets some of them
                    assert client.get(f"{own_url}/predict", params=row).status_code == 200
                    assert client.get(f"{serve_url}/predict", params=row).status_code == 200
            ours = _series(httpx.get(f"{own_url}/metrics").text, timed=False)
            theirs = _series(httpx.get(f"{serve_url}/metrics").text, timed=False)
    finally:
        os.killpg(own.pid, signal.SIGTERM)
        own.wait(30)
    # The server's own families about labels and its log are not the library's; each was
    # polled for readiness on its own path (/ready, /metrics): requests to /predict compared.
    theirs = {k: v for k, v in theirs.items() if k[0] in {name for name, _ in ours}}
    ours, theirs = ({k: v for k, v in d.items() if dict(k[1]).get("handler", "/predict") == "/predict"}
                    for d in (ours, theirs))
    assert ours.keys() == theirs.keys()
    different = {k: (ours[k], v) for k, v in theirs.items() if abs(ours[k] - v) > 1e-9 * max(1.0, abs(v))}
    assert not different
    assert sum(v for (name, _), v in ours.items() if name == "modelmon_predictions_total") == 400

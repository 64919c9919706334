"""A client of `mlflow models serve` switches to modelmon by changing the URL: the same
requests, in each of MLflow's formats, get the same answers from both (a real
`mlflow models serve` process, a real `modelmon serve`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.kinds import build_regressor
from tests.test_invocations import bodies

from .conftest import REPO, free_port, running, wait_until

pytestmark = pytest.mark.slow


def _mlflow_serve(model, port: int, log):
    return subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model), "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # mlflow starts `uvicorn` by name: the venv's, which is not on PATH when the venv is not active.
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})


def _rows(model: str, count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    if model == "stores":
        return [{"items_count": int(i), "customers_count": int(c)}
                for i, c in zip(rng.normal(1782, 300, count).round(), rng.normal(786, 265, count).clip(0).round())]
    return [{"sqft": float(s), "rooms": int(r)} for s, r in zip(rng.normal(120, 35, count).clip(20, None).round(1),
                                                               rng.integers(1, 7, count))]


@pytest.mark.parametrize("kind", ["stores", "regressor"])
def test_the_same_requests_get_the_same_answers_as_mlflow_models_serve(kind, tmp_path):
    model = REPO / "models" / "stores" if kind == "stores" else build_regressor(tmp_path / "houses")
    theirs_port, ours_port = free_port(), free_port()
    theirs, ours = f"http://127.0.0.1:{theirs_port}", f"http://127.0.0.1:{ours_port}"
    with (tmp_path / "mlflow.log").open("w") as log:
        mlflow = _mlflow_serve(model, theirs_port, log)
        try:
            with running(["serve", str(model), "--port", str(ours_port)], ready_url=f"{ours}/ready", timeout=120):
                def up() -> bool:
                    assert mlflow.poll() is None, (tmp_path / "mlflow.log").read_text()[-2000:]
                    return httpx.get(f"{theirs}/ping", timeout=2).status_code == 200

                wait_until(up, timeout=180, what="mlflow models serve")
                requests = {**bodies(_rows(kind, 1, 1)), **{f"{k}, 40 rows": v for k, v in bodies(_rows(kind, 40, 2)).items()}}
                for what, (body, content_type) in requests.items():
                    if what.startswith("inputs (rows)"):
                        continue  # MLflow refuses unnamed rows for a signature of named columns; modelmon reads them
                    answers = []
                    for url in (theirs, ours):
                        if isinstance(body, bytes):
                            got = httpx.post(f"{url}/invocations", content=body, headers={"Content-Type": content_type})
                        else:
                            got = httpx.post(f"{url}/invocations", json=body)
                        assert got.status_code == 200, (what, url, got.text)
                        answers.append(got.json())
                    assert answers[0].keys() == answers[1].keys() == {"predictions"}, what
                    np.testing.assert_allclose(answers[1]["predictions"], answers[0]["predictions"], rtol=1e-12,
                                               err_msg=what)
                assert httpx.get(f"{ours}/ping").status_code == httpx.get(f"{theirs}/ping").status_code == 200
                assert httpx.get(f"{ours}/version").text == httpx.get(f"{theirs}/version").text
        finally:
            os.killpg(mlflow.pid, signal.SIGTERM)
            mlflow.wait(30)

"""`modelmon serve` as a real process, over real HTTP."""

from __future__ import annotations

import subprocess
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import REPO, free_port, running


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(name)


def test_serve_answers_and_counts_over_http():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(["serve", "--port", str(port)], ready_url=f"{base}/ready") as proc, \
            httpx.Client(base_url=base) as client:
        first = client.post("/predict", json={"items_count": 1800, "customers_count": 1400}).json()
        assert first["label"] == "success" and len(first["request_id"]) == 32
        second = client.get("/predict", params={"items_count": 1800, "customers_count": 300}).json()
        assert second["label"] == "normal"
        bad = client.post("/predict", json={"items_count": 1800})
        assert bad.status_code == 422 and bad.json()["field"] == "customers_count"
        text = client.get("/metrics").text
    assert metric(text, "modelmon_predictions_total", **{"class": "success"}) == 1
    assert metric(text, "modelmon_predictions_total", **{"class": "normal"}) == 1
    assert metric(text, "modelmon_invalid_requests_total", reason="missing_field") == 1
    # Which way rows reach the model is said at startup and in the info series (a silent fallback
    # to DataFrames once cost every request its speed).
    assert metric(text, "modelmon_model_info", predict_path="matrix") == 1
    assert "rows reach the model as a plain matrix (the fast path)" in proc.log_path.read_text()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelmon", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_port_in_use_is_one_sentence():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("serve", "--port", str(taken.getsockname()[1]))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "is in use" in result.stderr and "--port" in result.stderr


def test_unreadable_model_is_one_sentence(tmp_path):
    result = run_cli("serve", str(tmp_path), "--port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "No MLflow model at" in result.stderr and "Traceback" not in result.stderr


def test_missing_or_corrupt_profile_is_one_sentence(tmp_path):
    import shutil

    model = tmp_path / "stores"
    shutil.copytree(REPO / "models" / "stores", model)
    (model / "reference_profile.json").unlink()
    missing = run_cli("serve", str(model), "--port", str(free_port()))
    assert missing.returncode == 2 and "No reference profile at" in missing.stderr
    assert "modelmon profile" in missing.stderr and missing.stderr.strip().count("\n") == 0
    (model / "reference_profile.json").write_text('{"schema_version": 1, "model": "x"')
    corrupt = run_cli("serve", str(model), "--port", str(free_port()))
    assert corrupt.returncode == 2 and "is not valid JSON" in corrupt.stderr
    assert corrupt.stderr.strip().count("\n") == 0


def test_an_unwritable_prediction_log_fails_before_the_server_announces_itself(tmp_path):
    (tmp_path / "file").write_text("")
    result = run_cli("serve", "--port", str(free_port()), "--prediction-log", str(tmp_path / "file" / "p.sqlite"))
    assert result.returncode == 2
    assert "serving" not in result.stdout, "it announced a server that never started"
    assert "writable file path" in result.stderr and result.stderr.strip().count("\n") == 0

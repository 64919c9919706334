"""Serving from a real MLflow tracking server (`mlflow server`, SQLite, local artifacts) and
following its alias mid-traffic: no failed request, every prediction counted once under the
version that made it, labels for earlier predictions still found, the drift reference switched."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelmon.contract import names as N
from modelmon.model.reference import ReferenceProfile, profile_path
from tests.registry import client, register, shifted_stores

from .conftest import REPO, free_port, running, wait_until

pytestmark = pytest.mark.slow

STORES = REPO / "models" / "stores"


@pytest.fixture()
def tracking_server(tmp_path):
    port = free_port("127.0.0.1")
    uri = f"http://127.0.0.1:{port}"
    log = (tmp_path / "mlflow.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: httpx.get(f"{uri}/health", timeout=2).status_code == 200, timeout=120,
                   what="mlflow server")
        yield uri
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _series(url: str) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"{url}/metrics").text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _by_version(series, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, labels), v in series.items():
        if n == name and v:
            version = dict(labels)["version"]
            out[version] = out.get(version, 0) + v
    return out


def test_the_alias_moves_mid_traffic(tracking_server, tmp_path):
    assert register(tracking_server, STORES, alias="champion") == "1"
    assert register(tracking_server, shifted_stores(tmp_path / "v2")) == "2"
    port = free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "predictions.sqlite"
    env = {"MLFLOW_TRACKING_URI": tracking_server, "MODELMON_MODEL_CACHE": str(tmp_path / "cache"),
           "MODELMON_PREDICTION_LOG": str(log)}
    with running(["serve", "--model", "models:/stores@champion", "--follow-alias", "1s", "--port", str(port)],
                 ready_url=f"{url}/ready", timeout=120, env=env):
        assert httpx.get(f"{url}/ready").json()["version"] == "1"
        before = _series(url)
        statuses: list[int] = []
        ids: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(timeout=10) as http:
                while not stop.is_set():
                    answer = http.get(f"{url}/predict", params={"items_count": 1800, "customers_count": 800})
                    statuses.append(answer.status_code)
                    if answer.status_code == 200:
                        ids.append(answer.json()["request_id"])

        sender = threading.Thread(target=traffic)
        sender.start()
        try:
            time.sleep(3)
            sent_before_move = len(statuses)
            client(tracking_server).set_registered_model_alias("stores", "champion", "2")
            wait_until(lambda: httpx.get(f"{url}/ready").json()["version"] == "2", timeout=30,
                       what="the switch to version 2")
            time.sleep(2)
        finally:
            stop.set()
            sender.join()
        assert sent_before_move > 50 and len(statuses) > sent_before_move + 50
        assert set(statuses) == {200}, "no request failed during the switch"

        # Labels for predictions made by version 1 are still found after the switch.
        first = ids[:20]
        answer = httpx.post(f"{url}/feedback", json=[{"request_id": i, "actual": "normal"} for i in first])
        assert answer.status_code == 200, answer.text
        after = _series(url)

    counted = _by_version(after, N.PREDICTIONS.total)
    assert sum(counted.values()) == len(ids)
    assert set(counted) == {"1", "2"} and counted["1"] >= sent_before_move
    with sqlite3.connect(log) as db:  # the log records, row by row, which version answered
        logged = dict(db.execute("SELECT version, SUM(rows) FROM modelmon_logged_requests GROUP BY version").fetchall())
    assert logged == {v: int(n) for v, n in counted.items()}
    assert _by_version(after, N.FEEDBACK.total) == {"1": 20}
    assert {dict(k)["version"]: v for (n, k), v in after.items() if n == N.MODEL_INFO.name} == {"1": 0, "2": 1}
    assert {dict(k)["result"]: v for (n, k), v in after.items() if n == N.MODEL_RELOADS.total} == \
        {"switched": 1, "failed": 0}
    # The drift reference switched with the version: version 2's training CDF of customers.
    v2 = ReferenceProfile.load(profile_path(tmp_path / "v2")).feature("customers_count")
    reference = {dict(k)[N.BOUND]: v for (n, k), v in after.items()
                 if n == N.FEATURE_VALUE_REFERENCE.name and dict(k)[N.FEATURE] == "customers_count"}
    assert reference == {N.bound_label(e): c for e, c in zip(v2.edges, v2.edges_cdf, strict=True)}
    assert reference != {dict(k)[N.BOUND]: v for (n, k), v in before.items()
                         if n == N.FEATURE_VALUE_REFERENCE.name and dict(k)[N.FEATURE] == "customers_count"}

"""POST /feedback over the real ASGI stack with a real SQLite prediction log."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.monitoring.predictionstore import PredictionStore, store_url
from modelmon.serving.app import create_app
from modelmon.settings import Settings

from .test_server import scrape, value


@pytest.fixture()
def client(stores_model, tmp_path: Path):
    settings = Settings(prediction_log=str(tmp_path / "predictions.sqlite"))
    with TestClient(create_app(stores_model, ReferenceProfile.load(profile_path(stores_model.path)), settings)) as c:
        yield c


def _predict(client: TestClient, rows: list[dict]) -> list[dict]:
    answers = []
    for start in range(0, len(rows), 25):  # a mix of single requests and batches
        chunk = rows[start:start + 25]
        if start % 50 == 0:
            answers += [client.post("/predict", json=r).json() for r in chunk]
        else:
            answers += client.post("/predict", json={"instances": chunk}).json()["predictions"]
    return answers


def test_confusion_counters_equal_the_confusion_matrix_of_the_labels_sent(client: TestClient) -> None:
    rng = np.random.default_rng(3)
    rows = [{"items_count": int(i), "customers_count": int(c)}
            for i, c in zip(rng.normal(1782, 300, 300).clip(0), rng.normal(786, 265, 300).clip(0))]
    answers = _predict(client, rows)
    # A truth that differs from the model often enough to fill every cell.
    actual = ["success" if r["customers_count"] > 800 and r["items_count"] < 1900 else "normal" for r in rows]
    labelled = rng.random(len(rows)) < 0.7
    items = [{"request_id": a["request_id"], "actual": act}
             for a, act, keep in zip(answers, actual, labelled) if keep]
    for start in range(0, len(items), 40):
        response = client.post("/feedback", json=items[start:start + 40])
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(items[start:start + 40])
    expected = Counter((act, a["label"]) for a, act, keep in zip(answers, actual, labelled) if keep)
    assert len([v for v in expected.values() if v]) == 4
    samples = scrape(client)
    for a in ("normal", "success"):
        for p in ("normal", "success"):
            assert value(samples, "modelmon_feedback_total", model="stores", actual=a, predicted=p) == expected[(a, p)]
    assert value(samples, "modelmon_feedback_delay_seconds_count", model="stores") == labelled.sum()


def test_raw_class_values_and_labels_both_name_a_class(client: TestClient) -> None:
    ids = [client.post("/predict", json={"items_count": 1800, "customers_count": 1300}).json()["request_id"]
           for _ in range(3)]
    for request_id, actual in zip(ids, (1, "1", "success")):
        answer = client.post("/feedback", json={"request_id": request_id, "actual": actual})
        assert answer.status_code == 200
        assert answer.json() | {"delay_seconds": 0} == {"request_id": request_id, "status": "accepted",
                                                         "actual": "success", "predicted": "success",
                                                         "delay_seconds": 0}


def test_unknown_duplicate_and_foreign_labels_are_refused_and_counted(client: TestClient) -> None:
    first = client.post("/predict", json={"items_count": 1800, "customers_count": 300}).json()["request_id"]
    assert client.post("/feedback", json={"request_id": first, "actual": 0}).status_code == 200

    duplicate = client.post("/feedback", json={"request_id": first, "actual": 1})
    assert duplicate.status_code == 409
    assert duplicate.json()["reason"] == "duplicate" and duplicate.json()["field"] == "request_id"

    unknown = client.post("/feedback", json={"request_id": "no-such-id", "actual": 0})
    assert unknown.status_code == 404 and unknown.json()["reason"] == "unknown_request_id"

    second = client.post("/predict", json={"items_count": 1800, "customers_count": 300}).json()["request_id"]
    foreign = client.post("/feedback", json=[{"request_id": second, "actual": 0},
                                              {"request_id": second, "actual": "big"}])
    assert foreign.status_code == 422
    assert foreign.json()["field"] == "[1].actual" and "'normal', 'success'" in foreign.json()["message"]
    for body, field in (({"request_id": second}, "actual"), ({"request_id": second, "actual": 0, "x": 1}, "x"),
                        ({"request_id": 7, "actual": 0}, "request_id"), ([], "body")):
        refused = client.post("/feedback", json=body)
        assert refused.status_code == 422 and refused.json()["field"] == field, refused.text
    assert client.post("/feedback", content=b"not json").status_code == 400

    samples = scrape(client)
    cells = {(a, p): value(samples, "modelmon_feedback_total", model="stores", actual=a, predicted=p)
             for a in ("normal", "success") for p in ("normal", "success")}
    assert cells == {("normal", "normal"): 1, ("normal", "success"): 0,
                     ("success", "normal"): 0, ("success", "success"): 0}  # refused bodies counted nothing
    rejected = {r: value(samples, "modelmon_feedback_rejected_total", model="stores", reason=r)
                for r in ("duplicate", "unknown_request_id", "invalid_label", "invalid_body")}
    assert rejected == {"duplicate": 1, "unknown_request_id": 1, "invalid_label": 1, "invalid_body": 5}

    # The refused batch recorded nothing: its valid item still takes a label.
    assert client.post("/feedback", json={"request_id": second, "actual": "normal"}).status_code == 200


def test_a_batch_records_the_valid_items_and_lists_the_refused(client: TestClient) -> None:
    answer = client.post("/predict", json={"instances": [{"items_count": 1800, "customers_count": 300}] * 2}).json()
    a, b = (p["request_id"] for p in answer["predictions"])
    assert a.startswith(answer["request_id"]) and a != b
    response = client.post("/feedback", json=[{"request_id": a, "actual": 0}, {"request_id": "nope", "actual": 0},
                                              {"request_id": b, "actual": 1}, {"request_id": b, "actual": 1}])
    # Some recorded, some refused: a success status (a client raising on 4xx would drop the
    # recorded labels, and its retry would get 409s), with each item's result.
    assert response.status_code == 207
    response.raise_for_status()
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [r["status"] for r in body["results"]] == ["accepted", "unknown_request_id", "accepted", "duplicate"]
    assert "2 of 4 items were refused" in body["message"] and "2 others were recorded" in body["message"]
    assert "207" in client.get("/openapi.json").json()["paths"]["/feedback"]["post"]["responses"]
    # A batch of which nothing counted is refused with the worst refusal's status.
    again = client.post("/feedback", json=[{"request_id": a, "actual": 0}, {"request_id": "nope", "actual": 0}])
    assert again.status_code == 409
    assert again.json()["field"] == "[0].request_id" and again.json()["accepted"] == 0
    assert "nothing was recorded" in again.json()["message"]


def test_a_label_joins_only_a_prediction_of_its_own_model(stores_model, iris_model, tmp_path: Path) -> None:
    """Two models' servers on one prediction log: a label sent to one never takes the other's
    prediction, nor counts it, nor uses up the label the other model needs."""
    shared = Settings(prediction_log=str(tmp_path / "shared.sqlite"))
    with TestClient(create_app(stores_model, ReferenceProfile.load(profile_path(stores_model.path)), shared)) as stores, \
            TestClient(create_app(iris_model, ReferenceProfile.load(profile_path(iris_model.path)), shared)) as iris:
        stores_id = stores.post("/predict", json={"items_count": 1800, "customers_count": 1300}).json()["request_id"]
        iris_class = ReferenceProfile.load(profile_path(iris_model.path)).classes[0].label
        wrong = iris.post("/feedback", json={"request_id": stores_id, "actual": iris_class})
        assert wrong.status_code == 404 and wrong.json()["reason"] == "unknown_request_id"
        samples = scrape(iris)
        assert not [v for (n, _), v in samples.items() if n == "modelmon_feedback_total" and v]
        assert stores.post("/feedback", json={"request_id": stores_id, "actual": "success"}).status_code == 200
        # The same request id logged by both models (a client's X-Request-ID) is two predictions.
        for client, row in ((stores, {"items_count": 1800, "customers_count": 300}),
                            (iris, dict.fromkeys(iris_model.feature_names, 1.0))):
            assert client.post("/predict", json=row, headers={"X-Request-ID": "same-id"}).status_code == 200
        assert stores.post("/feedback", json={"request_id": "same-id", "actual": "normal"}).status_code == 200
        assert iris.post("/feedback", json={"request_id": "same-id", "actual": iris_class}).status_code == 200


def test_without_a_prediction_log_feedback_says_how_to_enable_it(stores_model) -> None:
    profile = ReferenceProfile.load(profile_path(stores_model.path))
    with TestClient(create_app(stores_model, profile, Settings(prediction_log="off"))) as c:
        answer = c.post("/feedback", json={"request_id": "x", "actual": 0})
    assert answer.status_code == 503 and "--prediction-log" in answer.json()["message"]


def test_a_burst_over_the_queue_drops_log_entries_never_requests(stores_model, tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    settings = Settings(prediction_log=str(path), log_queue_rows=50, log_flush_seconds=0.05)
    profile = ReferenceProfile.load(profile_path(stores_model.path))
    ids = []
    with TestClient(create_app(stores_model, profile, settings)) as c:
        # Another writer holds the database: the log's writes wait, the queue fills.
        blocker = sqlite3.connect(path, timeout=1)
        blocker.execute("BEGIN EXCLUSIVE")
        for _ in range(200):
            answer = c.post("/predict", json={"items_count": 1800, "customers_count": 900})
            assert answer.status_code == 200
            ids.append(answer.json()["request_id"])
        dropped = value(scrape(c), "modelmon_prediction_log_dropped_total", model="stores", reason="queue_full")
        blocker.rollback()
        samples = scrape(c)
        assert value(samples, "modelmon_predictions_total", model="stores", **{"class": "normal"}) + \
            value(samples, "modelmon_predictions_total", model="stores", **{"class": "success"}) == 200
    assert 100 <= dropped <= 150  # at most the writer's one batch in hand and the 50-row queue survive
    stored = set(PredictionStore(store_url(path)).find("stores", ids))
    assert len(stored) == 200 - dropped
    assert set(ids[-50:]) <= stored  # the oldest were dropped, the newest kept

"""The collector: KServe's logged halves joined and counted exactly, /observe like the library."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from modelmon import Monitor
from modelmon.contract import names as N
from modelmon.serving.collector import REQUEST_TYPE, RESPONSE_TYPE, Event, Joiner, create_collector
from modelmon.serving.scoring import request_rows
from modelmon.settings import Settings

NAMES = ["items_count", "customers_count"]


def kserve_headers(event_id: str, half: str) -> dict[str, str]:
    """The headers KServe's logger sends with each half (binary-mode CloudEvents)."""
    return {
        "Ce-Id": event_id, "Ce-Specversion": "1.0", "Ce-Source": "http://localhost:9081/",
        "Ce-Type": REQUEST_TYPE if half == "request" else RESPONSE_TYPE,
        "Ce-Time": "2026-11-28T01:00:00Z", "Ce-Inferenceservicename": "stores", "Ce-Namespace": "models",
        "Ce-Component": "predictor", "Ce-Endpoint": "default", "Ce-Metadata": "{}",
        "Content-Type": "application/json",
    }


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _joiner(wait: float = 10.0, max_pending: int = 100):
    counted: dict[tuple[str, str], int] = {}

    def count(half: str, outcome: str) -> None:
        counted[(half, outcome)] = counted.get((half, outcome), 0) + 1

    clock = _Clock()
    return Joiner(count, wait, max_pending, clock), counted, clock


def test_halves_join_in_either_order_and_the_rest_is_counted():
    joiner, counted, clock = _joiner()
    assert joiner.add(Event("a", "request", 1)) is None
    assert joiner.add(Event("a", "response", 2)) == (1, 2)
    assert joiner.add(Event("b", "response", 4)) is None
    assert joiner.add(Event("b", "request", 3)) == (3, 4)
    assert joiner.add(Event("c", "request", 5)) is None
    assert joiner.add(Event("c", "request", 5)) is None  # sent twice
    assert joiner.add(Event("d", "response", 6)) is None  # its request never comes
    clock.now = 11.0
    joiner.expire()
    assert joiner.add(Event("c", "response", 7)) is None  # after its request gave up
    assert counted == {("request", "joined"): 2, ("response", "joined"): 2, ("request", "duplicate"): 1,
                       ("request", "unmatched"): 1, ("response", "unmatched"): 1, ("response", "late"): 1}
    assert joiner.pending == 0


def test_waiting_halves_are_bounded():
    joiner, counted, _ = _joiner(max_pending=3)
    for i in range(5):
        joiner.add(Event(str(i), "request", i))
    assert joiner.pending == 3 and counted == {("request", "unmatched"): 2}
    assert joiner.add(Event("0", "response", 0)) is None  # the oldest gave way: late
    assert counted[("response", "late")] == 1


@pytest.mark.parametrize("body", [
    {"instances": [[1800, 900], [300, 1000]]},
    {"instances": [{"items_count": 1800, "customers_count": 900}, {"items_count": 300, "customers_count": 1000}]},
    {"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "INT64", "data": [1800, 900, 300, 1000]}]},
    {"inputs": [{"name": "items_count", "shape": [2], "datatype": "INT64", "data": [1800, 300]},
                {"name": "customers_count", "shape": [2], "datatype": "INT64", "data": [900, 1000]}]},
    {"dataframe_split": {"columns": NAMES, "data": [[1800, 900], [300, 1000]]}},
], ids=["v1 lists", "v1 records", "v2 one tensor", "v2 named tensors", "mlflow split"])
def test_every_protocol_gives_the_same_rows(body):
    assert request_rows(body, NAMES) == [{"items_count": 1800, "customers_count": 900},
                                         {"items_count": 300, "customers_count": 1000}]


def _counted(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(client.get("/metrics").text) for s in family.samples}


@pytest.fixture()
def collector(stores_model, stores_profile):
    monitor = Monitor.for_model(stores_model, stores_profile, CollectorRegistry())
    return TestClient(create_collector(monitor, Settings(prediction_log="off")))


def test_kserve_events_are_joined_and_counted_exactly(collector):
    """Requests and responses as KServe's logger sends them, in either order, with a response
    whose request never comes: the joined rows are counted, each outcome once."""
    sent = [("1", [[1800, 900], [300, 1000]], [1, 0]), ("2", [[2000, 1100]], [1]), ("3", [[1500, 700]], [0])]
    for event_id, rows, answers in sent:
        halves = [("request", {"instances": rows}), ("response", {"predictions": answers})]
        if event_id == "2":
            halves.reverse()
        for half, body in halves:
            answer = collector.post("/", content=json.dumps(body), headers=kserve_headers(event_id, half))
            assert answer.status_code in (200, 202), answer.text
    assert collector.post("/", content=json.dumps({"predictions": [0]}),
                          headers=kserve_headers("4", "response")).status_code == 202
    counted = _counted(collector)
    by_class = {dict(k)["class"]: v for (name, k), v in counted.items() if name == N.PREDICTIONS.total}
    assert by_class == {"success": 2.0, "normal": 2.0, "other": 0.0}
    events = {(dict(k)["half"], dict(k)["outcome"]): v for (name, k), v in counted.items()
              if name == N.COLLECTOR_EVENTS.total and v}
    assert events == {("request", "joined"): 3.0, ("response", "joined"): 3.0}


def test_a_probability_per_class_is_read_as_probabilities(collector, stores_model):
    collector.post("/", content=json.dumps({"instances": [[1800, 900]]}), headers=kserve_headers("p", "request"))
    answer = collector.post("/", content=json.dumps({"predictions": [[0.3, 0.7]]}),
                            headers=kserve_headers("p", "response"))
    assert answer.json() == {"status": "joined", "observed": 1, "invalid": 0}
    counted = _counted(collector)
    assert counted[(N.PREDICTIONS.total, (("class", "success"), ("model", "stores"), ("version", stores_model.version)))] == 1
    assert sum(v for (name, _), v in counted.items() if name == N.EXPECTED_CONFUSION.total) == pytest.approx(1)


@pytest.mark.parametrize("headers, body, reason", [
    ({"Content-Type": "application/json"}, b"{}", "invalid_event"),
    ({**kserve_headers("x", "request"), "Ce-Type": "something.else"}, b"{}", "invalid_event"),
    (kserve_headers("x", "request"), b"not json", "invalid_event"),
])
def test_an_unreadable_event_is_a_400_that_says_why_and_is_counted(collector, headers, body, reason):
    answer = collector.post("/", content=body, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["reason"] == reason and answer.json()["message"].startswith("Not a KServe inference event")
    assert sum(v for (name, k), v in _counted(collector).items()
               if name == N.COLLECTOR_EVENTS.total and dict(k)["outcome"] == "invalid") == 1


def test_observe_counts_rows_and_refuses_a_wrong_shape(collector):
    rows = [{"items_count": 1800, "customers_count": 900}, {"items_count": "x", "customers_count": 1}]
    answer = collector.post("/observe", json={"rows": rows, "predictions": [1, 0]})
    assert answer.json()["observed"] == 1 and answer.json()["invalid"] == 1
    assert len(answer.json()["request_ids"]) == 1  # generated, for the observed row only
    wrong = collector.post("/observe", json={"rows": rows, "predictions": [1]})
    assert wrong.status_code == 422 and wrong.json()["reason"] == "length_mismatch"
    assert collector.post("/observe", json=[1, 2]).json()["reason"] == "wrong_type"
    invalid = {dict(k)["reason"]: v for (name, k), v in _counted(collector).items()
               if name == N.INVALID_REQUESTS.total and v}
    assert invalid == {"wrong_type": 2.0, "length_mismatch": 1.0}  # the bad row, then the two bodies


def test_feedback_finds_what_the_collector_logged(stores_model, stores_profile, tmp_path):
    """Request ids flow into the prediction log: labels for a model served elsewhere join the
    rows the collector saw, by the ids the client gave (/observe) or the event id (KServe)."""
    monitor = Monitor.for_model(stores_model, stores_profile, CollectorRegistry())
    settings = Settings(prediction_log=str(tmp_path / "predictions.sqlite"))
    with TestClient(create_collector(monitor, settings)) as client:
        rows = [{"items_count": 1800, "customers_count": 900}, {"items_count": 1500, "customers_count": 300}]
        answer = client.post("/observe", json={"rows": rows, "predictions": [1, 0], "request_ids": ["r1", "r2"]})
        assert answer.json() == {"observed": 2, "invalid": 0, "request_ids": ["r1", "r2"]}
        client.post("/", content=json.dumps({"instances": [[1700, 950]]}), headers=kserve_headers("k1", "request"))
        client.post("/", content=json.dumps({"predictions": [1]}), headers=kserve_headers("k1", "response"))
        labels = [{"request_id": "r1", "actual": "success"}, {"request_id": "r2", "actual": "success"},
                  {"request_id": "k1", "actual": "normal"}]
        feedback = client.post("/feedback", json=labels)
        assert feedback.status_code == 200, feedback.text
        assert feedback.json()["accepted"] == 3
        counted = _counted(client)
        cells = {(dict(k)["actual"], dict(k)["predicted"]): v for (name, k), v in counted.items()
                 if name == N.FEEDBACK.total and v}
        assert cells == {("success", "success"): 1, ("success", "normal"): 1, ("normal", "success"): 1}
        refused = client.post("/observe", json={"rows": rows, "predictions": [1, 0], "request_ids": ["a", "a"]})
        assert refused.status_code == 422 and refused.json()["reason"] == "wrong_request_ids"


def test_bodies_over_the_limit_and_answers_that_are_not_classes_are_refused_and_counted(stores_model,
                                                                                      stores_profile):
    monitor = Monitor.for_model(stores_model, stores_profile, CollectorRegistry())
    client = TestClient(create_collector(monitor, Settings(prediction_log="off", max_body_bytes=200)))
    big = json.dumps({"instances": [[1800, 900]] * 50})
    answer = client.post("/", content=big, headers=kserve_headers("big", "request"))
    assert answer.status_code == 413 and answer.json()["reason"] == "body_too_large"
    answer = client.post("/observe", content=json.dumps({"rows": [{"items_count": 1}] * 50, "predictions": [0] * 50}),
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    client.post("/", content=json.dumps({"instances": [[1800, 900]]}), headers=kserve_headers("odd", "request"))
    odd = client.post("/", content=json.dumps({"predictions": [{"not": "a class"}]}),
                      headers=kserve_headers("odd", "response"))
    assert odd.status_code == 422 and odd.json()["reason"] == "unreadable_inference"
    counted = _counted(client)
    events = {(dict(k)["half"], dict(k)["outcome"]): v for (name, k), v in counted.items()
              if name == N.COLLECTOR_EVENTS.total and v}
    assert events == {("request", "invalid"): 2.0, ("request", "joined"): 1.0, ("response", "joined"): 1.0}
    assert counted[(N.INVALID_REQUESTS.total, (("model", "stores"), ("reason", "body_too_large")))] == 1
    assert sum(v for (name, _), v in counted.items() if name == N.PREDICTIONS.total) == 0

"""The library: `Monitor.observe` in a team's own app counts what `modelmon serve` counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from modelmon import Monitor
from modelmon.contract import names as N
from modelmon.contract.reasons import INVALID_REASONS
from modelmon.monitoring.metrics import FeedbackMetrics, ReloadMetrics
from modelmon.settings import Settings

from .conftest import REPO, STORES_DIR, make_client

# What only a serving process measures about itself: the model call's time and batch sizes
# (a library user times their own call), and requests' latency (the app adds it with instrument).
_TIMED = (N.MODEL_PREDICT_SECONDS.name, N.BATCH_ROWS.name, N.REQUEST_DURATION.name)


def _series(text: str, timed: bool = True) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """modelmon's samples; without what only a serving process times (`timed`), or with the
    latency histograms' counts only (how many requests, not how long)."""
    out = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("modelmon_"):
            continue
        for s in family.samples:
            if family.name in _TIMED and (timed or family.name != N.REQUEST_DURATION.name
                                          or not s.name.endswith("_count")):
                continue
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _assert_same(got: dict, expected: dict, what: str) -> None:
    """The same series with the same values; sums of floats added in another order (other
    batches) may differ in the last bits."""
    assert got.keys() == expected.keys(), what
    different = {k: (got[k], v) for k, v in expected.items() if got[k] != pytest.approx(v, rel=1e-12, abs=1e-12)}
    assert not different, (what, different)


def _rows(n: int, seed: int = 0) -> list[dict[str, int]]:
    rng = np.random.default_rng(seed)
    return [{"items_count": int(i), "customers_count": int(c)}
            for i, c in zip(rng.normal(1782, 300, n).round(), rng.normal(786, 265, n).clip(0).round())]


@pytest.fixture(scope="module")
def monitor_factory(stores_model, stores_profile):
    return lambda: Monitor.for_model(stores_model, stores_profile, CollectorRegistry())


def _predicted(model, rows):
    arrays = model.columns({k: [r[k] for r in rows] for k in rows[0]})
    prediction = model.predict_columns(arrays)
    return prediction.values, prediction.probabilities


def test_the_library_counts_what_the_server_counts(stores_model, stores_profile, monitor_factory):
    """The same rows: sent to the server, and observed through the library with the model's
    own answers. Every modelmon series has the same value (not only the same names)."""
    rows = _rows(300)
    client = make_client(stores_model, Settings(prediction_log="off"))
    for start in range(0, len(rows), 50):
        assert client.post("/predict", json={"instances": rows[start:start + 50]}).status_code == 200
    assert client.post("/predict", json={"items_count": "many"}).status_code == 422
    monitor = monitor_factory()
    values, probabilities = _predicted(stores_model, rows)
    assert monitor.observe(rows, values, probabilities).rows == 300
    assert monitor.observe({"items_count": "many"}, [0]).invalid == 1
    # Labels, the prediction log and alias reloads are the server's; the library counts predictions.
    scratch = CollectorRegistry()
    FeedbackMetrics(stores_profile, scratch, "")
    ReloadMetrics("stores", scratch)  # the server's own, too: it follows registry aliases
    feedback = {metric.name for metric in scratch.collect()}
    served = {k: v for k, v in _series(client.get("/metrics").text).items()
              if not any(k[0].startswith(name) for name in feedback)}
    observed = _series(TestClient(monitor.metrics_app()).get("/").text)
    _assert_same(observed, served, "library vs server")
    assert served[(N.PREDICTIONS.total, (("class", "success"), ("model", "stores"), ("version", stores_model.version)))] > 0
    # Every row's probabilities went into the expected confusion (each row's cells sum to 1).
    expected = sum(v for (name, _), v in observed.items() if name == N.EXPECTED_CONFUSION.total)
    assert expected == pytest.approx(300)


def test_every_input_shape_counts_the_same(stores_model, monitor_factory):
    rows = _rows(20, seed=1)
    values, probabilities = _predicted(stores_model, rows)
    frame = pd.DataFrame(rows)
    shapes = {
        "list of dicts": rows,
        "DataFrame": frame,
        "NumPy": frame[["items_count", "customers_count"]].to_numpy(),
        "columns": {k: frame[k].to_numpy() for k in frame},
    }
    texts = {}
    for what, inputs in shapes.items():
        monitor = monitor_factory()
        assert monitor.observe(inputs, values, probabilities).rows == 20, what
        texts[what] = _series(TestClient(monitor.metrics_app()).get("/").text)
    one_by_one = monitor_factory()
    for row, value, proba in zip(rows, values, probabilities):
        one_by_one.observe(row, value, proba)
    texts["one row at a time"] = _series(TestClient(one_by_one.metrics_app()).get("/").text)
    first = texts.pop("list of dicts")
    for what, series in texts.items():
        _assert_same(series, first, what)


def test_invalid_rows_are_counted_by_reason_and_never_raised(monitor_factory, stores_model):
    monitor = monitor_factory()
    rows = [{"items_count": 1800, "customers_count": 800}, {"items_count": "lots", "customers_count": 800},
            {"items_count": 1800}, {"items_count": 1.5e308, "customers_count": float("inf")}]
    observed = monitor.observe(rows, [0, 0, 0, 0])
    assert (observed.rows, observed.invalid) == (1, 3)
    series = _series(TestClient(monitor.metrics_app()).get("/").text)
    invalid = {dict(k)["reason"]: v for (name, k), v in series.items() if name == N.INVALID_REQUESTS.total and v}
    assert sum(invalid.values()) == 3 and set(invalid) <= set(INVALID_REASONS)
    assert series[(N.PREDICTIONS.total, (("class", "normal"), ("model", "stores"), ("version", stores_model.version)))] == 1


def test_a_caller_mistake_is_a_clear_error(monitor_factory):
    """Not the data's fault, but the calling code's: one sentence, before anything is counted."""
    monitor = monitor_factory()
    with pytest.raises(ValueError, match="2 rows of inputs but 1 predictions"):
        monitor.observe(_rows(2), [0])
    with pytest.raises(ValueError, match="probabilities have 3 columns; the model has 2 classes"):
        monitor.observe(_rows(1), [0], [[0.2, 0.3, 0.5]])


def test_metrics_app_and_instrument_in_a_fastapi_app(monitor_factory):
    """The few lines a team adds to its own app: mount /metrics, time its requests."""
    monitor = monitor_factory()
    app = FastAPI()

    @app.post("/predict")
    def predict(row: dict) -> dict:
        monitor.observe(row, [1])
        return {"label": "success"}

    monitor.instrument(app)
    client = TestClient(app)
    assert client.post("/predict", json={"items_count": 1800, "customers_count": 900}).status_code == 200
    openmetrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    text = client.get("/metrics").text
    assert f'modelmon_predictions_total{{class="success",model="stores",version="{monitor.version}"}} 1.0' in text
    assert 'modelmon_request_duration_seconds_count{handler="/predict",method="POST",status="2xx"} 1.0' in text


def test_from_model_dir_reads_the_model_and_its_profile():
    monitor = Monitor.from_model_dir(STORES_DIR)
    assert [f.name for f in monitor.features] == ["items_count", "customers_count"]
    assert monitor.class_labels == ("normal", "success") and monitor.probability_classes


def test_the_workshop_shaped_example_app_counts_what_the_server_counts(stores_model, stores_profile, monkeypatch):
    """examples/own_fastapi_app.py (its own /predict and model call, a few lines of modelmon)
    and `modelmon serve`, sent the same requests: the same modelmon series, values included."""
    import importlib
    import sys

    monkeypatch.setenv("MODEL_DIR", str(STORES_DIR))
    monkeypatch.syspath_prepend(str(REPO))
    sys.modules.pop("examples.own_fastapi_app", None)
    example = importlib.import_module("examples.own_fastapi_app")
    own = TestClient(example.app)
    served = make_client(stores_model, Settings(prediction_log="off"))
    for row in [*_rows(120, seed=2), {"items_count": "x", "customers_count": 1}]:
        assert own.get("/predict", params=row).status_code == served.get("/predict", params=row).status_code
    scratch = CollectorRegistry()
    FeedbackMetrics(stores_profile, scratch, "")
    ReloadMetrics("stores", scratch)  # the server's own, too: it follows registry aliases
    feedback = {metric.name for metric in scratch.collect()}
    theirs = {k: v for k, v in _series(served.get("/metrics").text, timed=False).items()
              if not any(k[0].startswith(name) for name in feedback)}
    ours = _series(own.get("/metrics").text, timed=False)
    # The example's invalid request never reaches its code (FastAPI refuses the query first),
    # so it is not counted as the server counts its own 422; everything else is the same.
    invalid = [k for k in theirs if k[0] == N.INVALID_REQUESTS.total]
    assert sum(theirs.pop(k) for k in invalid) == 1
    assert sum(ours.pop(k) for k in invalid) == 0
    _assert_same(ours, theirs, "example app vs server")

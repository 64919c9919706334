"""The server over the real FastAPI/ASGI stack, with /metrics parsed as Prometheus would."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelmon.contract.buckets import QUANTILE_BUCKETS
from modelmon.settings import Settings
from modelmon.stats.calibration import expected_confusion

from .conftest import make_client


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples, name, **labels):
    """The series with exactly these labels, summed over model versions (as a query by model does)."""
    want = {k: str(v) for k, v in labels.items()}
    found = [v for (n, have), v in samples.items()
             if n == name and all(dict(have).get(k) == v for k, v in want.items())
             and {k for k, _ in have} - want.keys() <= {"version"}]
    if not found:
        raise KeyError((name, labels))
    return sum(found)


def le(x: float) -> str:
    from prometheus_client.utils import floatToGoString

    return floatToGoString(x)


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(42)
    return pd.DataFrame({
        "items_count": np.concatenate([rng.normal(1782, 300, 40), rng.normal(300, 100, 20)]).round().clip(0).astype(int),
        "customers_count": np.concatenate([rng.normal(786, 265, 40), rng.normal(1000, 100, 20)]).round().clip(0).astype(int),
    })


def test_predictions_equal_pyfunc_and_metrics_add_up(stores_model, stores_profile, rows):
    client = make_client(stores_model)
    single, batch = rows.iloc[:30], rows.iloc[30:]
    answers = [client.post("/predict", json=r).json() for r in single.to_dict("records")]
    answers += client.post("/predict", json={"instances": batch.iloc[:20].to_dict("records")}).json()["predictions"]
    for r in batch.iloc[20:].to_dict("records"):
        answers.append(client.get("/predict", params=r).json())

    expected = np.asarray(stores_model.pyfunc.predict(rows))
    assert [a["prediction"] for a in answers] == expected.tolist()
    assert [a["label"] for a in answers] == ["success" if p == 1 else "normal" for p in expected]
    proba = stores_model.pyfunc.get_raw_model().predict_proba(rows)[:, 1]
    np.testing.assert_allclose([a["probability"] for a in answers], proba, rtol=1e-12)

    s = scrape(client)
    assert value(s, "modelmon_predictions_total", model="stores", **{"class": "success"}) == (expected == 1).sum()
    assert value(s, "modelmon_predictions_total", model="stores", **{"class": "normal"}) == (expected == 0).sum()
    assert value(s, "modelmon_prediction_probability_count", model="stores") == len(rows)
    assert value(s, "modelmon_prediction_probability_bucket", model="stores", le="0.5") == (proba <= 0.5).sum()
    for name in ("items_count", "customers_count"):
        feature = stores_profile.feature(name)
        sent = rows[name].to_numpy()
        assert value(s, "modelmon_feature_last_value", model="stores", feature=name) == sent[-1]
        for edge, share in zip(feature.edges, feature.edges_cdf):
            assert value(s, "modelmon_feature_value_bucket", model="stores", feature=name, le=le(edge)) == (sent <= edge).sum()
            assert value(s, "modelmon_feature_value_reference", model="stores", feature=name, bound=le(edge)) == share
        assert value(s, "modelmon_feature_value_count", model="stores", feature=name) == len(sent)
        assert value(s, "modelmon_feature_value_sum", model="stores", feature=name) == pytest.approx(sent.sum())
        ranks = feature.rank(sent)
        for q in QUANTILE_BUCKETS:
            assert value(s, "modelmon_feature_quantile_bucket", model="stores", feature=name, le=le(q)) == (ranks <= q).sum()
        for q, ref in zip(QUANTILE_BUCKETS, feature.quantile_reference):
            assert value(s, "modelmon_feature_quantile_reference", model="stores", feature=name, bound=le(q)) == ref
        assert value(s, "modelmon_feature_out_of_range_total", model="stores", feature=name, side="below") == (sent < feature.min).sum()
        assert value(s, "modelmon_feature_out_of_range_total", model="stores", feature=name, side="above") == (sent > feature.max).sum()
    # The drifted rows (items ~ 300) are below the training minimum: counted, not rejected.
    assert value(s, "modelmon_feature_out_of_range_total", model="stores", feature="items_count", side="below") >= 15
    for c in stores_profile.classes:
        assert value(s, "modelmon_prediction_reference_ratio", model="stores", **{"class": c.label}) == c.prior
    assert value(s, "modelmon_model_predict_seconds_count", model="stores") == 30 + 1 + 10
    assert value(s, "modelmon_request_duration_seconds_count", handler="/predict", method="POST", status="2xx") == 31
    assert value(s, "modelmon_request_duration_seconds_count", handler="/predict", method="GET", status="2xx") == 10
    info = value(s, "modelmon_model_info", model="stores", version=stores_model.version,
                 run_id=stores_model.run_id, flavor="sklearn", registered_name="", alias="", predict_path="matrix")
    assert info == 1, "modelmon_model_info says the stores model takes the matrix fast path"
    # Estimated quality: each row's calibrated probabilities, by predicted and actual class.
    raw = stores_model.pyfunc.get_raw_model().predict_proba(rows)
    matrix = expected_confusion(expected, stores_profile.calibration.apply(raw))
    labels = ("normal", "success")
    for a, predicted in enumerate(labels):
        for c, actual in enumerate(labels):
            assert value(s, "modelmon_expected_confusion_total", model="stores", predicted=predicted,
                         actual=actual) == pytest.approx(matrix[a, c], rel=1e-9, abs=1e-12)
    assert sum(value(s, "modelmon_expected_confusion_total", model="stores", predicted=p, actual=a)
               for p in labels for a in labels) == pytest.approx(len(rows))


def test_bad_inputs_get_4xx_are_counted_and_leave_state_alone(stores_model):
    client = make_client(stores_model, Settings(max_batch_rows=2, max_body_bytes=200, prediction_log="off"))
    good = {"items_count": 1800, "customers_count": 950}
    cases = [
        ("missing_field", 422, lambda: client.post("/predict", json={"items_count": 1})),
        ("wrong_type", 422, lambda: client.post("/predict", json={**good, "items_count": "a lot"})),
        ("out_of_bounds", 422, lambda: client.post("/predict", json={**good, "customers_count": -5})),
        ("not_finite", 422, lambda: client.post("/predict", content=b'{"items_count": NaN, "customers_count": 1}')),
        ("extra_field", 422, lambda: client.post("/predict", json={**good, "store_id": 7})),
        ("empty_body", 400, lambda: client.post("/predict", content=b"")),
        ("invalid_json", 400, lambda: client.post("/predict", content=b"<xml/>")),
        ("batch_too_large", 413, lambda: client.post("/predict", json={"instances": [good] * 3})),
        ("body_too_large", 413, lambda: client.post("/predict", content=b" " * 201)),
        ("wrong_type", 422, lambda: client.get("/predict", params={"items_count": "x", "customers_count": 1})),
        ("missing_field", 422, lambda: client.get("/predict")),
    ]
    for reason, status, call in cases:
        response = call()
        assert response.status_code == status, reason
        body = response.json()
        assert body["reason"] == reason and body["message"]
        assert "field" in body
        if reason == "body_too_large":  # the limit is a setting: the answer names it
            assert "200-byte limit" in body["message"] and "--max-body-bytes" in body["message"]
    s = scrape(client)
    counts = {r: value(s, "modelmon_invalid_requests_total", model="stores", reason=r) for r, _, _ in cases}
    assert counts == {"missing_field": 2, "wrong_type": 2, "out_of_bounds": 1, "not_finite": 1, "extra_field": 1,
                      "empty_body": 1, "invalid_json": 1, "batch_too_large": 1, "body_too_large": 1}
    assert sum(v for (n, _), v in s.items() if n == "modelmon_predictions_total") == 0
    assert value(s, "modelmon_feature_value_count", model="stores", feature="items_count") == 0
    # The server keeps serving.
    assert client.post("/predict", json=good).status_code == 200
    assert value(scrape(client), "modelmon_feature_value_count", model="stores", feature="items_count") == 1


def test_error_names_the_field_and_why(stores_model):
    client = make_client(stores_model)
    body = client.post("/predict", json={"instances": [{"items_count": 1, "customers_count": 2},
                                                        {"items_count": 1, "customers_count": "many"}]}).json()
    assert body["field"] == "instances[1].customers_count"
    assert body["message"] == "'customers_count' must be an integer, got \"many\"."


def test_health_ready_docs(stores_model):
    client = make_client(stores_model)
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["model"] == "stores"
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    record = body["oneOf"][0]
    assert record["properties"]["items_count"] == {
        "minimum": 0, "maximum": 2**53 - 1, "title": "Items Count", "type": "integer"}
    assert set(record["required"]) == {"items_count", "customers_count"}
    assert record["additionalProperties"] is False
    params = {p["name"] for p in spec["paths"]["/predict"]["get"]["parameters"]}
    assert params == {"items_count", "customers_count"}
    assert {"400", "413", "422"} <= set(spec["paths"]["/predict"]["post"]["responses"])


def test_unknown_paths_stay_one_label(stores_model):
    client = make_client(stores_model)
    for i in range(5):
        assert client.get(f"/nope/{i}").status_code == 404
    s = scrape(client)
    handlers = {dict(labels)["handler"] for (n, labels) in s if n == "modelmon_request_duration_seconds_count"}
    assert "other" in handlers and not any(h.startswith("/nope") for h in handlers)


def test_iris_is_served_and_instrumented_without_specific_code(iris_model, iris_frame):
    client = make_client(iris_model)
    x = iris_frame.drop(columns="target")
    answer = client.post("/predict", json={"instances": x.to_dict("records")}).json()["predictions"]
    expected = np.asarray(iris_model.pyfunc.predict(x))
    assert [a["prediction"] for a in answer] == expected.tolist()
    assert set(answer[0]["probabilities"]) == {"0", "1", "2"}
    assert "probability" not in answer[0]  # three classes: no single positive class
    s = scrape(client)
    for k in (0, 1, 2):
        assert value(s, "modelmon_predictions_total", model="model", **{"class": str(k)}) == (expected == k).sum()
    for name in x.columns:
        assert value(s, "modelmon_feature_value_count", model="model", feature=name) == len(x)
        assert value(s, "modelmon_feature_quantile_count", model="model", feature=name) == len(x)
    assert not any(n.startswith("modelmon_prediction_probability") for n, _ in s)
    # Too few rows to calibrate (150, a held-out 45): the estimate uses the raw probabilities.
    raw = iris_model.pyfunc.get_raw_model().predict_proba(x)
    matrix = expected_confusion(expected, raw)
    for a in (0, 1, 2):
        for c in (0, 1, 2):
            assert value(s, "modelmon_expected_confusion_total", model="model", predicted=str(a),
                         actual=str(c)) == pytest.approx(matrix[a, c], rel=1e-9, abs=1e-12)

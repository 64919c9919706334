"""MLflow's scoring protocol on modelmon's server: `/invocations` in every request format
`mlflow models serve` takes, answered as it answers, monitored and logged like `/predict`.
(The same requests against a real `mlflow models serve`: tests/integration/test_invocations.py.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelmon.contract import names as N
from modelmon.contract.reasons import INVALID_REASONS
from modelmon.settings import Settings

from .conftest import make_client
from .test_server import scrape, value

ROWS = [{"items_count": 1800, "customers_count": 1200}, {"items_count": 1500, "customers_count": 300},
        {"items_count": 2100, "customers_count": 950}]


def bodies(rows: list[dict]) -> dict[str, tuple[bytes | dict, str]]:
    """One request in each of MLflow's formats."""
    names = list(rows[0])
    return {
        "dataframe_split": ({"dataframe_split": {"columns": names, "data": [[r[n] for n in names] for r in rows]}},
                            "application/json"),
        "dataframe_records": ({"dataframe_records": rows}, "application/json"),
        "instances": ({"instances": rows}, "application/json"),
        "inputs (columns)": ({"inputs": {n: [r[n] for r in rows] for n in names}}, "application/json"),
        "inputs (rows)": ({"inputs": [[r[n] for n in names] for r in rows]}, "application/json"),
        "csv": (pd.DataFrame(rows).to_csv(index=False).encode(), "text/csv"),
    }


def _post(client, body, kind):
    if isinstance(body, bytes):
        return client.post("/invocations", content=body, headers={"Content-Type": kind})
    return client.post("/invocations", json=body)


def test_every_mlflow_format_gets_the_models_predictions(stores_model):
    client = make_client(stores_model)
    expected = np.asarray(stores_model.pyfunc.predict(pd.DataFrame(ROWS))).tolist()
    for what, (body, kind) in bodies(ROWS).items():
        answer = _post(client, body, kind)
        assert answer.status_code == 200, (what, answer.text)
        assert answer.json() == {"predictions": expected}, what
    s = scrape(client)
    counted = sum(value(s, N.PREDICTIONS.total, model="stores", **{"class": c}) for c in ("normal", "success"))
    assert counted == 3 * len(bodies(ROWS))
    assert value(s, N.REQUEST_DURATION.count, handler="/invocations", method="POST", status="2xx") == len(bodies(ROWS))


def test_a_bad_scoring_request_is_a_4xx_that_names_the_field_and_is_counted(stores_model):
    client = make_client(stores_model)
    cases = [
        (b"", "application/json", 400, "empty_body"),
        (b"{", "application/json", 400, "invalid_json"),
        ({"rows": ROWS}, None, 422, "wrong_type"),
        ({"dataframe_records": []}, None, 422, "empty_batch"),
        ({"dataframe_records": [{"items_count": "many", "customers_count": 3}]}, None, 422, "wrong_type"),
        ({"inputs": {"items_count": [1, 2], "customers_count": [3]}}, None, 422, "wrong_type"),
        (b"items_count,customers_count\n1,2,3\n", "text/csv", 422, "wrong_type"),
        ({"dataframe_records": [{"items_count": 1800}]}, None, 422, "missing_field"),
    ]
    for body, kind, status, reason in cases:
        answer = _post(client, body, kind) if kind else client.post("/invocations", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["reason"] == reason, (body, answer.json())
    s = scrape(client)
    assert sum(value(s, N.INVALID_REQUESTS.total, model="stores", reason=r) for r in INVALID_REASONS) == len(cases)
    assert sum(v for (n, _), v in s.items() if n == N.PREDICTIONS.total) == 0


def test_too_many_rows_is_413(stores_model):
    client = make_client(stores_model, Settings(prediction_log="off", max_batch_rows=2))
    answer = client.post("/invocations", json={"dataframe_records": ROWS})
    assert answer.status_code == 413 and answer.json()["field"] == "dataframe_records"


def test_invocations_are_logged_for_feedback(stores_model, tmp_path):
    client = make_client(stores_model, Settings(prediction_log=str(tmp_path / "log.sqlite")))
    answer = client.post("/invocations", json={"dataframe_records": ROWS})
    stem = answer.headers["X-Request-ID"]
    labels = [{"request_id": f"{stem}-{i}", "actual": "normal"} for i in range(len(ROWS))]
    assert client.post("/feedback", json=labels).status_code == 200
    one = client.post("/invocations", json={"dataframe_records": ROWS[:1]})
    assert client.post("/feedback", json={"request_id": one.headers["X-Request-ID"], "actual": "success"}).status_code == 200


@pytest.mark.parametrize("route", ["/invocations", "/predict"])
def test_the_clients_own_request_id_names_the_request_and_its_rows(stores_model, tmp_path, route):
    client = make_client(stores_model, Settings(prediction_log=str(tmp_path / "log.sqlite")))
    body = {"dataframe_records": ROWS} if route == "/invocations" else {"instances": ROWS}
    answer = client.post(route, json=body, headers={"X-Request-ID": "order-17:a.b~c_d"})
    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "order-17:a.b~c_d"
    labels = [{"request_id": f"order-17:a.b~c_d-{i}", "actual": "normal"} for i in range(len(ROWS))]
    response = client.post("/feedback", json=labels)
    assert response.status_code == 200 and response.json()["accepted"] == 3, response.text
    single = client.post(route, json={"dataframe_records": ROWS[:1]} if route == "/invocations" else ROWS[0],
                         headers={"X-Request-ID": "single-1"})
    assert single.headers["X-Request-ID"] == "single-1"
    assert client.post("/feedback", json={"request_id": "single-1", "actual": "success"}).status_code == 200
    # A header that cannot name a prediction: 422 naming it, counted, nothing predicted.
    for bad in ("x" * 65, "has space", "-leading", "semi;colon", ""):
        refused = client.post(route, json=body, headers={"X-Request-ID": bad})
        assert refused.status_code == 422, bad
        assert (refused.json()["field"], refused.json()["reason"]) == ("X-Request-ID", "invalid_request_id")
    samples = scrape(client)
    assert value(samples, N.INVALID_REQUESTS.total, model="stores", reason="invalid_request_id") == 5
    predicted = sum(value(samples, N.PREDICTIONS.total, model="stores", **{"class": c}) for c in ("normal", "success"))
    assert predicted == len(ROWS) + 1


@pytest.mark.parametrize("path", ["/ping", "/health", "/version"])
def test_mlflows_other_routes_answer(stores_model, path):
    answer = make_client(stores_model).get(path)
    assert answer.status_code == 200 and answer.text

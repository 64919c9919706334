"""Every kind of model a team has: profiled and served, each built here from seeded data.

A regressor, a multiclass model with string classes, a model with a categorical and a
nullable input, a LightGBM model and a custom pyfunc (see tests/kinds.py); plus the bounds
that keep every label set small whatever a model predicts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from modelmon.model.loading import load_model
from modelmon.model.profile import build_profile, profile_category
from modelmon.model.reference import (
    MAX_CATEGORIES,
    MAX_CLASSES,
    ClassProfile,
    ProfileError,
    ReferenceProfile,
    profile_path,
)
from modelmon.monitoring.metrics import ModelMetrics

from .conftest import make_client
from .kinds import build_custom_pyfunc, build_lightgbm, build_string_classes


def _samples(client) -> dict[tuple[str, frozenset], float]:
    text = client.get("/metrics").text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples, name: str, **labels: str) -> float:
    from .test_server import value

    return value(samples, name, **labels)


def test_a_regressor_is_profiled_as_one(regressor_model):
    profile = ReferenceProfile.load(profile_path(regressor_model.path))
    assert profile.task == "regression" and profile.classes == ()
    assert profile.prediction is not None and len(profile.prediction.edges) == 9  # training deciles
    frame = pd.read_csv(regressor_model.path.parent / "houses.csv")
    predicted = regressor_model.predict(frame[["sqft", "rooms"]]).values
    assert profile.errors is not None
    assert profile.errors.mae == pytest.approx(np.abs(predicted - frame["price"]).mean())
    assert profile.errors.rmse == pytest.approx(np.sqrt(((predicted - frame["price"]) ** 2).mean()))


def test_a_regressor_serves_values_and_measures_its_error(regressor_model, tmp_path):
    from modelmon.settings import Settings

    with make_client(regressor_model, Settings(prediction_log=str(tmp_path / "log.sqlite"))) as client:
        answer = client.post("/predict", json={"sqft": 100.0, "rooms": 3}).json()
        assert isinstance(answer["prediction"], float) and "label" not in answer
        over = client.post("/feedback", json={"request_id": answer["request_id"],
                                              "actual": answer["prediction"] - 1000})
        assert over.status_code == 200, over.text
        refused = client.post("/feedback", json={"request_id": answer["request_id"], "actual": "cheap"})
        assert refused.status_code == 422 and refused.json()["field"] == "actual"
        assert "finite number" in refused.json()["message"]
        samples = _samples(client)
    model = "houses"
    assert _value(samples, "modelmon_predictions_total", model=model, **{"class": ""}) == 1
    assert _value(samples, "modelmon_prediction_value_count", model=model) == 1
    assert _value(samples, "modelmon_prediction_quantile_count", model=model) == 1
    assert _value(samples, "modelmon_prediction_absolute_error_count", model=model) == 1
    assert _value(samples, "modelmon_prediction_absolute_error_sum", model=model) == pytest.approx(1000)
    assert _value(samples, "modelmon_prediction_squared_error_total", model=model) == pytest.approx(1e6)
    assert _value(samples, "modelmon_prediction_signed_error_total", model=model, direction="over") == \
        pytest.approx(1000)
    assert _value(samples, "modelmon_prediction_signed_error_total", model=model, direction="under") == 0
    assert not any(name == "modelmon_feedback_total" for name, _ in samples)


def test_string_classes_are_labels(tmp_path):
    model = load_model(build_string_classes(tmp_path))
    profile = ReferenceProfile.load(profile_path(model.path))
    assert [c.label for c in profile.classes] == ["setosa", "versicolor", "virginica"]
    assert profile.positive is None
    row = {"sepal_length_cm": 5.1, "sepal_width_cm": 3.5, "petal_length_cm": 1.4, "petal_width_cm": 0.2}
    from modelmon.settings import Settings

    with make_client(model, Settings(prediction_log=str(tmp_path / "log.sqlite"))) as client:
        answer = client.post("/predict", json=row).json()
        assert answer["label"] == "setosa" and set(answer["probabilities"]) == {"setosa", "versicolor", "virginica"}
        assert client.post("/feedback", json={"request_id": answer["request_id"], "actual": "setosa"}).status_code == 200
        samples = _samples(client)
    assert _value(samples, "modelmon_predictions_total", model="model", **{"class": "setosa"}) == 1
    assert _value(samples, "modelmon_feedback_total", model="model", actual="setosa", predicted="setosa") == 1


def test_categorical_and_missing_inputs_are_profiled_and_counted(categorical_model):
    profile = ReferenceProfile.load(profile_path(categorical_model.path))
    country = profile.category("country")
    assert country.values == ("de", "fr", "it") and sum(country.shares) == pytest.approx(1)
    assert [f.name for f in profile.features] == ["amount"] and profile.feature("amount").nullable
    assert 0.07 < profile.feature("amount").missing_share < 0.13
    with make_client(categorical_model) as client:
        rows = [{"country": "de", "amount": 50.0}, {"country": "es", "amount": None}, {"country": "fr"}]
        answer = client.post("/predict", json={"instances": rows})
        assert answer.status_code == 200, answer.text
        wrong = client.post("/predict", json={"country": 3, "amount": 1.0})
        assert wrong.status_code == 422 and (wrong.json()["field"], wrong.json()["reason"]) == ("country", "wrong_type")
        samples = _samples(client)
    labels = {"model": "payments", "feature": "country"}
    assert _value(samples, "modelmon_feature_category_total", **labels, category="de") == 1
    assert _value(samples, "modelmon_feature_category_total", **labels, category="it") == 0
    assert _value(samples, "modelmon_feature_category_total", **labels, category="other") == 1
    assert _value(samples, "modelmon_feature_unseen_category_total", **labels) == 1
    assert _value(samples, "modelmon_feature_category_reference", **labels, category="de") == country.shares[0]
    amount = {"model": "payments", "feature": "amount"}
    assert _value(samples, "modelmon_feature_missing_total", **amount) == 2
    assert _value(samples, "modelmon_feature_quantile_count", **amount) == 1  # only the value that was sent
    assert _value(samples, "modelmon_invalid_requests_total", model="payments", reason="wrong_type") == 1


def test_a_lightgbm_model_is_served_through_its_native_flavor(tmp_path):
    model = load_model(build_lightgbm(tmp_path))
    assert model.flavor == "lightgbm" and model.has_probabilities
    frame = pd.read_csv(tmp_path / "houses.csv")[["sqft", "rooms"]].head(200)
    assert np.array_equal(model.predict(frame).values, np.asarray(model.pyfunc.predict(frame)))
    profile = ReferenceProfile.load(profile_path(model.path))
    assert profile.task == "classification" and profile.probability_cdf is not None
    with make_client(model) as client:
        answer = client.post("/predict", json={"sqft": 180.0, "rooms": 4}).json()
        assert "probability" in answer
        assert _value(_samples(client), "modelmon_prediction_probability_count", model="model") == 1


def test_a_custom_pyfunc_is_served_through_pyfunc(tmp_path):
    model = load_model(build_custom_pyfunc(tmp_path))
    assert model.flavor == "python_function" and not model.has_probabilities
    profile = ReferenceProfile.load(profile_path(model.path))
    assert profile.task == "regression"  # fractional outputs, and no estimator to ask
    with make_client(model) as client:
        assert client.post("/predict", json={"a": 1.0, "b": 2.0}).json()["prediction"] == 6.0
        assert _value(_samples(client), "modelmon_prediction_value_count", model="model") == 1


def _many_classes(tmp_path, classes: int, task: str | None = None):
    """A tree that predicts one of `classes` integer classes."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"x": rng.normal(0, 1, 2000)})
    y = np.digitize(x["x"], np.quantile(x["x"], np.linspace(0, 1, classes + 1)[1:-1]))
    model_dir = tmp_path / "model"
    mlflow.sklearn.save_model(DecisionTreeClassifier().fit(x, y), str(model_dir),
                              signature=infer_signature(x, y), serialization_format="cloudpickle")
    if task:
        (model_dir / "modelmon.yaml").write_text(f"task: {task}\n")
    return load_model(model_dir), x.assign(y=y)


def test_a_classifier_over_the_class_bound_is_refused_suggesting_regression(tmp_path):
    model, data = _many_classes(tmp_path, MAX_CLASSES + 10)
    with pytest.raises(ProfileError, match="task: regression"):
        build_profile(model, data, "y")


def test_a_declared_task_wins(tmp_path):
    model, data = _many_classes(tmp_path, MAX_CLASSES + 10, task="regression")
    assert build_profile(model, data, "y").task == "regression"


def test_a_category_named_other_is_refused_naming_the_column():
    with pytest.raises(ProfileError, match="'shop'"):
        profile_category("shop", "string", pd.Series(["a", "other", "b"]))


def test_the_metrics_cap_classes_and_categories_whatever_the_profile_says(stores_profile):
    """A hand-edited profile with 200 classes and 200 categories exports at most the bounds."""
    import dataclasses

    classes = tuple(ClassProfile(i, f"c{i}", 1 / 200) for i in range(200))
    category = profile_category("shop", "string", pd.Series([f"s{i}" for i in range(200)] * 2))
    assert len(category.values) == MAX_CATEGORIES and category.other_share > 0
    swollen = dataclasses.replace(stores_profile, classes=classes, positive_class=None,
                                  categories=(dataclasses.replace(category, values=tuple(f"s{i}" for i in range(200)),
                                                                  shares=(0.005,) * 200),))
    registry = CollectorRegistry()
    ModelMetrics(swollen, {}, registry)
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    series = {(s.name, frozenset(s.labels.items())) for f in text_string_to_metric_families(text) for s in f.samples}
    predicted = [labels for name, labels in series if name == "modelmon_predictions_total"]
    categories = [labels for name, labels in series if name == "modelmon_feature_category_total"]
    assert len(predicted) == MAX_CLASSES + 1  # and `other`
    assert len(categories) == MAX_CATEGORIES + 1

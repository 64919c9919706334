import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelmon.model.loading import PROBABILITY_TOLERANCE, load_model
from modelmon.model.signature import ModelLoadError

from .conftest import STORES_CSV


def test_stores_model_features_come_from_signature_and_settings(stores_model):
    assert stores_model.name == "stores"
    assert [(f.name, f.kind, f.minimum) for f in stores_model.features] == [
        ("items_count", "integer", 0), ("customers_count", "integer", 0)
    ]
    assert stores_model.flavor == "sklearn"
    assert stores_model.classes == (0, 1)
    assert stores_model.has_probabilities


def test_fast_path_equals_pyfunc_on_random_rows(stores_model):
    rng = np.random.default_rng(7)
    columns = {
        "items_count": rng.integers(0, 4000, 3000).tolist(),
        "customers_count": rng.integers(0, 2500, 3000).tolist(),
    }
    assert stores_model.predict_path == "matrix", \
        f"the stores pipeline should take the matrix fast path ({stores_model.path_reason})"
    assert stores_model._argmax is not None, "its predict is the argmax of predict_proba: one call serves both"
    fast = stores_model.predict_columns(stores_model.columns(columns))
    frame = stores_model.frame(columns)
    np.testing.assert_array_equal(fast.values, np.asarray(stores_model.pyfunc.predict(frame)))
    # The same probabilities up to summation order (BLAS sees a row-major matrix, not the frame's columns).
    np.testing.assert_allclose(fast.probabilities, stores_model.pyfunc.get_raw_model().predict_proba(frame),
                               rtol=PROBABILITY_TOLERANCE, atol=PROBABILITY_TOLERANCE)
    assert fast.probabilities.shape == (3000, 2)


def test_the_regressor_takes_the_fast_path_with_identical_values(regressor_model):
    rng = np.random.default_rng(11)
    columns = {"sqft": rng.normal(120, 35, 2000).round(1).tolist(), "rooms": rng.integers(1, 7, 2000).tolist()}
    assert regressor_model.predict_path == "matrix", regressor_model.path_reason
    assert regressor_model.info["predict_path"] == "matrix"
    fast = regressor_model.predict_columns(regressor_model.columns(columns))
    np.testing.assert_array_equal(fast.values, np.asarray(regressor_model.pyfunc.predict(regressor_model.frame(columns))))


class _Noisy(LogisticRegression):
    """Answers a plain matrix with probabilities moved by `shift` (to the second class from the
    first), as another summation order, or a real difference, would; a DataFrame as it is."""

    shift = 0.0

    def predict_proba(self, x):
        p = super().predict_proba(x)
        if not isinstance(x, pd.DataFrame):
            p = p + np.array([-self.shift, self.shift]) * (np.minimum(p[:, [0]], p[:, [1]]) > 0.01)
        return p


class _FloatNoise(_Noisy):
    shift = 1e-13  # summation order on a sum of a few hundred terms: far above the 8.6e-23 seen


class _RealDifference(_Noisy):
    shift = 1e-8  # ten times the tolerance: no summation order moves a probability this far


def _save_classifier(estimator_class, out, seed=5, noise=900):
    """Fit `estimator_class` on two integer inputs (the class: a + noise > 1500), save it with MLflow."""
    import warnings

    import mlflow.sklearn
    from mlflow.models import infer_signature

    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.integers(0, 3000, 400), "b": rng.integers(0, 3000, 400)})
    y = (x.a + rng.normal(0, noise, 400) > 1500).astype("int64")
    estimator = estimator_class().fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(estimator, str(out), signature=infer_signature(x, y),
                                  serialization_format="cloudpickle")
    return estimator, x


def test_probabilities_that_differ_by_float_noise_keep_the_fast_path(tmp_path):
    _, x = _save_classifier(_FloatNoise, tmp_path / "m")
    model = load_model(tmp_path / "m")
    assert model.predict_path == "matrix", model.path_reason
    matrix = model._native.predict_proba(x.to_numpy())
    assert np.abs(matrix - model._native.predict_proba(x)).max() == pytest.approx(1e-13, rel=1e-3), \
        "the probe must really differ"


def test_probabilities_that_really_differ_keep_the_dataframe_path(tmp_path, caplog):
    estimator, x = _save_classifier(_RealDifference, tmp_path / "m")
    with caplog.at_level("WARNING", logger="modelmon.model.loading"):
        model = load_model(tmp_path / "m")
    assert model.predict_path == "dataframe"
    assert model.info["predict_path"] == "dataframe"
    assert "probabilities differ by up to 1e-08" in model.path_reason
    assert any("called on DataFrames" in r.getMessage() and "1e-08" in r.getMessage() for r in caplog.records), \
        "a numeric model off the fast path is said in the log"
    got = model.predict_columns(model.columns({"a": x.a.tolist(), "b": x.b.tolist()}))
    np.testing.assert_array_equal(got.probabilities, estimator.predict_proba(x))


def test_a_model_that_needs_column_names_stays_on_dataframes(tmp_path):
    import warnings

    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = pd.DataFrame({"a": np.arange(40, dtype="int64"), "b": np.arange(40, dtype="int64") % 7})
    y = (x.a > 20).astype(int)
    pipeline = make_pipeline(ColumnTransformer([("scale", StandardScaler(), ["a"])], remainder="passthrough"),
                             LogisticRegression()).fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(pipeline, str(tmp_path / "m"), signature=infer_signature(x, y),
                                  serialization_format="skops")
    model = load_model(tmp_path / "m")
    assert model.predict_path == "dataframe"
    got = model.predict_columns(model.columns({"a": [1, 30], "b": [2, 3]}))
    assert got.values.tolist() == [0, 1]


class _Cautious(LogisticRegression):
    """A classifier whose predict is not the argmax of its probabilities: 1 only above 0.8."""

    def predict(self, x):
        return (self.predict_proba(x)[:, 1] > 0.8).astype("int64")


def test_a_classifier_whose_predict_is_not_the_argmax_is_called_for_both(tmp_path):
    estimator, x = _save_classifier(_Cautious, tmp_path / "m", seed=3, noise=600)
    model = load_model(tmp_path / "m")
    assert model._argmax is None
    columns = {"a": x.a.tolist(), "b": x.b.tolist()}
    got = model.predict_columns(model.columns(columns))
    expected = estimator.predict(x)
    assert (expected != estimator.predict_proba(x).argmax(axis=1)).any(), "the probe must tell them apart"
    np.testing.assert_array_equal(got.values, expected)
    np.testing.assert_array_equal(got.probabilities, estimator.predict_proba(x))


def test_training_rows_predict_like_pyfunc(stores_model):
    frame = pd.read_csv(STORES_CSV)[["items_count", "customers_count"]]
    np.testing.assert_array_equal(
        stores_model.predict(frame).values, np.asarray(stores_model.pyfunc.predict(frame))
    )


def test_missing_directory_is_one_sentence(tmp_path):
    with pytest.raises(ModelLoadError, match=r"No MLflow model at .*modelmon train"):
        load_model(tmp_path / "absent")


def test_corrupt_model_is_one_sentence(tmp_path, stores_model):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(stores_model.path, broken)
    (broken / "model.skops").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="Could not load the MLflow model") as info:
        load_model(broken)
    assert "\n" not in str(info.value)


def test_a_scikit_learn_model_is_served_without_importing_mlflow():
    """MLflow's pyfunc machinery costs a second and about 50 MB at start; a scikit-learn model
    is deserialised from its MLmodel's own instructions instead."""
    import subprocess
    import sys

    from .conftest import STORES_DIR

    code = ("import sys; from modelmon.model.loading import load_model; m = load_model(sys.argv[1]); "
            "print(m.flavor, m.version, m.predict_columns(m.columns({'items_count': [1800], 'customers_count': [1200]}))"
            ".values.tolist(), sorted(n for n in sys.modules if n == 'mlflow' or n.startswith('mlflow.')))")
    out = subprocess.run([sys.executable, "-c", code, str(STORES_DIR)], capture_output=True, text=True, check=True)
    assert out.stdout.split(" ", 2)[0] == "sklearn"
    assert out.stdout.strip().endswith("[]"), f"mlflow was imported: {out.stdout}"


def test_deserialisation_switched_off_is_honoured(stores_model, monkeypatch):
    """MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false refuses the model, as MLflow itself does."""
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(ModelLoadError, match=r"Could not load the MLflow model.*MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        load_model(stores_model.path)

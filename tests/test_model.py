import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelmon.model import ModelLoadError, load_model

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
    assert stores_model._matrix, "the stores pipeline should take the matrix fast path"
    assert stores_model._argmax is not None, "its predict is the argmax of predict_proba: one call serves both"
    fast = stores_model.predict_columns(stores_model.columns(columns))
    frame = stores_model.frame(columns)
    np.testing.assert_array_equal(fast.values, np.asarray(stores_model.pyfunc.predict(frame)))
    np.testing.assert_array_equal(fast.probabilities, stores_model.pyfunc.get_raw_model().predict_proba(frame))
    assert fast.probabilities.shape == (3000, 2)


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
    assert not model._matrix
    got = model.predict_columns(model.columns({"a": [1, 30], "b": [2, 3]}))
    assert got.values.tolist() == [0, 1]


class _Cautious(LogisticRegression):
    """A classifier whose predict is not the argmax of its probabilities: 1 only above 0.8."""

    def predict(self, x):
        return (self.predict_proba(x)[:, 1] > 0.8).astype("int64")


def test_a_classifier_whose_predict_is_not_the_argmax_is_called_for_both(tmp_path):
    import warnings

    import mlflow.sklearn
    from mlflow.models import infer_signature

    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.integers(0, 3000, 400), "b": rng.integers(0, 3000, 400)})
    y = (x.a + rng.normal(0, 600, 400) > 1500).astype("int64")
    estimator = _Cautious().fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(estimator, str(tmp_path / "m"), signature=infer_signature(x, y),
                                  serialization_format="cloudpickle")
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

    code = ("import sys; from modelmon.model import load_model; m = load_model(sys.argv[1]); "
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

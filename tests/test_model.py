import numpy as np
import pandas as pd
import pytest

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

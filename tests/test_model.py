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


def test_native_path_equals_pyfunc_on_random_rows(stores_model):
    rng = np.random.default_rng(7)
    columns = {
        "items_count": rng.integers(0, 4000, 3000).tolist(),
        "customers_count": rng.integers(0, 2500, 3000).tolist(),
    }
    frame = stores_model.frame(columns)
    fast = stores_model.predict(frame)
    reference = stores_model.pyfunc.predict(frame)
    np.testing.assert_array_equal(fast.values, np.asarray(reference))
    assert fast.probabilities.shape == (3000, 2)


def test_training_rows_predict_like_pyfunc(stores_model):
    frame = pd.read_csv(STORES_CSV)[["items_count", "customers_count"]]
    np.testing.assert_array_equal(
        stores_model.predict(frame).values, np.asarray(stores_model.pyfunc.predict(frame))
    )


def test_missing_directory_is_one_sentence(tmp_path):
    with pytest.raises(ModelLoadError, match="No MLflow model at .*modelmon train"):
        load_model(tmp_path / "absent")


def test_corrupt_model_is_one_sentence(tmp_path, stores_model):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(stores_model.path, broken)
    (broken / "model.skops").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="Could not load the MLflow model") as info:
        load_model(broken)
    assert "\n" not in str(info.value)

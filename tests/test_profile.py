import json

import numpy as np
import pandas as pd
import pytest

from modelmon.profile import (
    QUANTILE_BUCKETS,
    SCHEMA_VERSION,
    ProfileError,
    ReferenceProfile,
    build_profile,
    profile_feature,
)

from .conftest import STORES_CSV


def test_stores_profile_uses_the_workshop_edges(stores_profile):
    items = stores_profile.feature("items_count")
    customers = stores_profile.feature("customers_count")
    assert items.edges == tuple(float(e) for e in range(1000, 2751, 250))
    assert customers.edges == tuple(float(e) for e in range(200, 1601, 200))
    data = pd.read_csv(STORES_CSV)
    assert items.count == 896 and items.missing_share == 0
    assert items.mean == pytest.approx(data.items_count.mean())
    assert items.min == data.items_count.min() and items.max == data.items_count.max()
    assert customers.edges_cdf[0] == pytest.approx((data.customers_count <= 200).mean())


def test_stores_profile_classes_and_priors(stores_profile, stores_model):
    data = pd.read_csv(STORES_CSV)
    predicted = stores_model.pyfunc.predict(data[["items_count", "customers_count"]])
    assert [(c.value, c.label) for c in stores_profile.classes] == [(0, "normal"), (1, "success")]
    assert stores_profile.positive_class == 1
    assert stores_profile.classes[1].prior == pytest.approx(np.mean(predicted == 1))
    assert stores_profile.classes[1].actual_share == 0.25
    assert stores_profile.probability_cdf[-1] == 1.0


def test_rank_is_uniform_on_training_data(stores_profile):
    """F_ref(x) of the training data fills the ten rank buckets evenly: the no-drift baseline."""
    for feature in stores_profile.features:
        assert np.allclose(feature.quantile_reference, QUANTILE_BUCKETS, atol=0.01)


def test_ranks_handle_ties_without_bias():
    column = pd.Series([1, 1, 1, 1, 2, 2, 3, 3, 3, 3])
    feature = profile_feature("x", "integer", column)
    assert feature.rank(np.array([0, 1, 2, 3, 4])).tolist() == pytest.approx([0, 0.2, 0.5, 0.8, 1])
    # With ties the no-drift CDF is not the diagonal; it is recorded instead of assumed.
    assert feature.quantile_reference[1] == pytest.approx(0.4)


def test_default_edges_are_training_deciles(iris_dir):
    profile = ReferenceProfile.load(iris_dir / "model" / "reference_profile.json")
    data = pd.read_csv(iris_dir / "iris.csv")
    petal = profile.feature("petal_length_cm")
    assert petal.edges == tuple(np.unique(np.round(np.quantile(data.petal_length_cm, np.linspace(0.1, 0.9, 9)), 6)))
    assert [c.label for c in profile.classes] == ["0", "1", "2"]
    assert profile.positive_class is None


def test_profile_round_trips_through_json(stores_profile, tmp_path):
    path = stores_profile.save(tmp_path / "p.json")
    assert ReferenceProfile.load(path) == stores_profile
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_profile_errors_are_actionable(tmp_path, stores_model):
    with pytest.raises(ProfileError, match="modelmon profile"):
        ReferenceProfile.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        ReferenceProfile.load(tmp_path / "bad.json")
    with pytest.raises(ProfileError, match="lacks the model's input column"):
        build_profile(stores_model, pd.DataFrame({"items_count": [1, 2]}))

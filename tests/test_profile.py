import json

import numpy as np
import pandas as pd
import pytest

from modelmon.contract.buckets import QUANTILE_BUCKETS
from modelmon.model.profile import build_profile, profile_feature
from modelmon.model.reference import SCHEMA_VERSION, ProfileError, ReferenceProfile

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


@pytest.fixture()
def own_stores(tmp_path):
    """A copy of the stores model (calibrated profile included) and its training CSV as text."""
    import shutil

    from .conftest import STORES_DIR

    shutil.copytree(STORES_DIR, tmp_path / "model")
    return tmp_path / "model", STORES_CSV.read_text().splitlines()


def _profile_cli(capsys, model, lines, tmp_path, *args):
    from modelmon.cli import main

    csv = tmp_path / "data.csv"
    csv.write_text("\n".join(lines) + "\n")
    code = main(["profile", "--model", str(model), "--data", str(csv), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _with_cell(lines, row, column, value):
    """The CSV with data row `row` (1-based, after the header) holding `value` in `column`."""
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    return [*lines[:row], ",".join(cells), *lines[row + 1:]]


def test_a_text_cell_in_a_numeric_column_is_one_sentence_naming_column_and_row(capsys, own_stores, tmp_path):
    model, lines = own_stores
    code, _, err = _profile_cli(capsys, model, _with_cell(lines, 5, "customers_count", "abc"), tmp_path,
                                "--target", "success")
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err
    assert "'customers_count'" in err and "row 5" in err and "'abc'" in err and "correct or remove" in err


def test_a_missing_cell_the_model_cannot_take_names_column_row_and_fix(capsys, own_stores, tmp_path):
    model, lines = own_stores
    code, _, err = _profile_cli(capsys, model, _with_cell(lines, 7, "items_count", "n/a"), tmp_path,
                                "--target", "success")
    assert code == 2 and err.strip().count("\n") == 0
    assert "'items_count'" in err and "row 7" in err and "fill or drop such rows" in err
    reason = err[err.index("(") + 1:err.index(")")]
    assert reason.endswith("."), f"scikit-learn's reason is quoted whole, not cut: {reason!r}"


def test_a_target_that_is_an_input_or_not_the_label_says_so(capsys, own_stores, tmp_path):
    model, lines = own_stores
    code, _, err = _profile_cli(capsys, model, lines, tmp_path, "--target", "items_count")
    assert code == 2 and "'items_count' is one of the model's inputs" in err
    numbered = [lines[0] + ",store_id", *(f"{line},{1000 + i}" for i, line in enumerate(lines[1:]))]
    code, _, err = _profile_cli(capsys, model, numbered, tmp_path, "--target", "store_id")
    assert code == 2 and "'store_id' has 896 distinct values, while the model predicts 2 classes" in err


def test_too_few_rows_to_calibrate_says_that_not_pass_target(capsys, own_stores, tmp_path):
    model, lines = own_stores
    code, out, _ = _profile_cli(capsys, model, lines[:151], tmp_path, "--target", "success",
                                "--out", str(tmp_path / "small.json"))
    assert code == 0
    assert "Not calibrated: the held-out 30% of the training data has 45 labelled rows, under the 100" in out
    assert "pass --target" not in out


def test_profiling_without_target_does_not_replace_a_calibrated_profile(capsys, own_stores, tmp_path):
    model, lines = own_stores
    config = model / "modelmon.yaml"  # a model whose settings name no target: it comes from --target only
    config.write_text("".join(line for line in config.read_text().splitlines(keepends=True)
                              if not line.startswith("target:")))
    before = (model / "reference_profile.json").read_text()
    code, out, err = _profile_cli(capsys, model, lines, tmp_path)
    assert code == 2 and "holds a calibrated profile and this one is not (no --target was given)" in err
    assert (model / "reference_profile.json").read_text() == before
    code, out, _ = _profile_cli(capsys, model, lines, tmp_path, "--out", str(tmp_path / "raw.json"))
    assert code == 0 and "pass --target" in out

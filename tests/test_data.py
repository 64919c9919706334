import numpy as np

from modelmon.cli import main
from modelmon.workshop.data import generate_stores, read_csv

from .conftest import STORES_CSV


def test_generator_reproduces_committed_csv_byte_for_byte(tmp_path):
    out = tmp_path / "stores.csv"
    assert main(["data", "generate", "--out", str(out)]) == 0
    assert out.read_bytes() == STORES_CSV.read_bytes()


def test_dataset_has_the_workshop_figures():
    frame = generate_stores()
    assert len(frame) == 896
    assert abs(frame.items_count.mean() - 1782) < 1
    assert abs(frame.items_count.std() - 300) < 1
    assert abs(frame.customers_count.mean() - 786) < 1
    assert abs(frame.customers_count.std() - 265) < 1.5
    assert frame.success.mean() == 0.25
    # Success mostly where customers exceed about 950.
    above = frame[frame.customers_count > 950]
    assert above.success.mean() > 0.8
    assert frame[frame.customers_count < 900].success.mean() < 0.05


def test_linear_model_reaches_about_96_percent():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = generate_stores()
    scores = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression()),
        frame[["items_count", "customers_count"]], frame.success, cv=5,
    )
    assert 0.93 <= np.mean(scores) <= 0.99


def test_missing_csv_says_how_to_make_it(tmp_path, capsys):
    import pytest

    from modelmon.cli import main
    from modelmon.workshop.data import DataError

    with pytest.raises(DataError, match="modelmon data generate"):
        read_csv(tmp_path / "nope.csv")
    # On the command line: one sentence and exit status 2, not a traceback.
    assert main(["profile", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "p.json")]) == 2
    assert capsys.readouterr().err.startswith("modelmon: No data file at")

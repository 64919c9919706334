from modelmon.cli import main
from modelmon.report.eda import explore

from .conftest import STORES_CSV


def test_stores_eda_writes_a_plot_per_column_and_the_summary(tmp_path):
    assert main(["data", "explore", "--data", str(STORES_CSV), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["customers_count.png", "items_count.png", "success.png"]
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    summary = (tmp_path / "summary.md").read_text()
    assert "| items_count | 896 | 1,781.99 | 300.01 |" in summary
    assert "- `1`: 25.0%" in summary


def test_eda_of_another_csv(tmp_path, iris_dir):
    written = explore(iris_dir / "iris.csv", tmp_path / "iris", target="target")
    names = {p.name for p in written}
    assert {"sepal_length_cm.png", "petal_width_cm.png", "target.png", "summary.md"} <= names
    assert "Share of each `target` value" in (tmp_path / "iris" / "summary.md").read_text()


def test_missing_csv_is_one_sentence(tmp_path, capsys):
    assert main(["data", "explore", "--data", str(tmp_path / "none.csv")]) == 2
    assert "modelmon data generate" in capsys.readouterr().err


def test_eda_of_a_csv_with_a_categorical_and_a_missing_column(tmp_path):
    """A string column used to stop `data explore` with a traceback."""
    from .kinds import payments

    payments().to_csv(tmp_path / "payments.csv", index=False)
    assert main(["data", "explore", "--data", str(tmp_path / "payments.csv"), "--out", str(tmp_path / "eda"),
                 "--target", "fraud"]) == 0
    assert sorted(p.name for p in (tmp_path / "eda").glob("*.png")) == ["amount.png", "country.png", "fraud.png"]
    summary = (tmp_path / "eda" / "summary.md").read_text()
    assert "| country | 3000 | 3 | `de` 50.7%" in summary
    assert "- `amount`: 9.2% of rows" in summary


def test_with_the_model_its_calibration_is_pictured_and_summarised(tmp_path):
    from .conftest import STORES_DIR

    assert main(["data", "explore", "--data", str(STORES_CSV), "--out", str(tmp_path), "--model", str(STORES_DIR)]) == 0
    picture = tmp_path / "calibration.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10000
    summary = (tmp_path / "summary.md").read_text()
    assert "expected calibration error 0.030 raw, 0.010 calibrated" in summary
    assert "accuracy 96.7%, precision 95.8%, recall 90.6%, F1 93.1%" in summary

"""Shared fixtures: the committed stores model and a second, unrelated model (iris)."""

from __future__ import annotations

import fcntl
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from modelmon.cli import main as cli_main
from modelmon.model.loading import LoadedModel, load_model
from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.serving.app import create_app
from modelmon.settings import Settings

REPO = Path(__file__).resolve().parents[1]
STORES_DIR = REPO / "models" / "stores"
STORES_CSV = REPO / "data" / "stores.csv"


@pytest.fixture(scope="session")
def stores_model() -> LoadedModel:
    return load_model(STORES_DIR)


@pytest.fixture(scope="session")
def stores_profile() -> ReferenceProfile:
    return ReferenceProfile.load(profile_path(STORES_DIR))


def build_iris(root: Path) -> Path:
    """A three-class model on float inputs, profiled by the CLI, with no modelmon.yaml."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "_cm").replace(" ", "_"))
    x = frame.drop(columns="target")
    model = LogisticRegression(max_iter=1000).fit(x, frame["target"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            model, str(root / "model"), signature=infer_signature(x, model.predict(x)),
            serialization_format="skops",
        )
    frame.to_csv(root / "iris.csv", index=False)
    assert cli_main(["profile", "--model", str(root / "model"), "--data", str(root / "iris.csv"),
                     "--target", "target"]) == 0
    return root


def built_once(tmp_path_factory: pytest.TempPathFactory, worker_id: str, name: str,
               build: Callable[[Path], Path]) -> Path:
    """`build(folder)`, once per test run: pytest-xdist gives every worker a session of its own,
    so its workers share one build in the run's common temp folder, made under a lock by whichever
    asks first (the models are read, never changed, by the tests)."""
    if worker_id == "master":
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    with open(root.parent / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        made = root / ".built"
        if not made.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            made.write_text(str(build(root).relative_to(root)))
        return root / made.read_text()


@pytest.fixture(scope="session")
def iris_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    return built_once(tmp_path_factory, worker_id, "iris", build_iris)


@pytest.fixture(scope="session")
def iris_model(iris_dir: Path) -> LoadedModel:
    return load_model(iris_dir / "model")


@pytest.fixture(scope="session")
def iris_frame(iris_dir: Path) -> pd.DataFrame:
    return pd.read_csv(iris_dir / "iris.csv")


@pytest.fixture(scope="session")
def regressor_model(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> LoadedModel:
    """The issue's Ridge regression (sqft, rooms -> price)."""
    from .kinds import build_regressor

    return load_model(built_once(tmp_path_factory, worker_id, "regressor", build_regressor))


@pytest.fixture(scope="session")
def categorical_model(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> LoadedModel:
    """A fraud classifier on a string input (country) and a sometimes-missing amount."""
    from .kinds import build_categorical

    return load_model(built_once(tmp_path_factory, worker_id, "categorical", build_categorical))


def make_client(model: LoadedModel, settings: Settings | None = None) -> TestClient:
    """A fresh app (and registry) over the real ASGI stack, for counting from zero."""
    profile = ReferenceProfile.load(profile_path(model.path))
    return TestClient(create_app(model, profile, settings or Settings(prediction_log="off")))


# When CI is set, a skipped test fails the run: a missing binary or a database that would
# not start must not pass as green. A test may only be skipped if it is named here, with why.
ALLOWED_SKIPS: dict[str, str] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = [r for r in (reporter.stats.get("skipped", []) if reporter else []) if r.nodeid not in ALLOWED_SKIPS]
    if skipped:
        if reporter:
            reporter.ensure_newline()
            reporter.write_sep("=", f"CI: {len(skipped)} test(s) skipped and not in ALLOWED_SKIPS "
                                    "(tests/conftest.py)", red=True)
            for report in skipped:
                reporter.write_line(f"  {report.nodeid}: {report.longrepr[-1] if report.longrepr else ''}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

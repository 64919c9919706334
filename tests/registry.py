"""A Model Registry for tests: MLflow's own tracking store (SQLite, local artifacts), and
versions of the stores model registered in it as a team would, from a run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from modelmon.model.loading import load_model
from modelmon.model.profile import build_profile
from modelmon.model.reference import profile_path
from modelmon.workshop.data import generate_stores

from .conftest import STORES_DIR


def client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def register(tracking_uri: str, folder: Path, name: str = "stores", alias: str | None = None,
             artifacts: Path | None = None) -> str:
    """Log `folder` as a run's `model` artifact and register it as a new version of `name`."""
    mlflow = client(tracking_uri)
    experiment = mlflow.get_experiment_by_name("modelmon-tests")
    experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(
        "modelmon-tests", artifact_location=(artifacts.as_uri() if artifacts else None))
    run = mlflow.create_run(experiment_id)
    mlflow.log_artifacts(run.info.run_id, str(folder), "model")
    mlflow.set_terminated(run.info.run_id)
    if not mlflow.search_registered_models(f"name = '{name}'"):
        mlflow.create_registered_model(name)
    version = mlflow.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    if alias:
        mlflow.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def shifted_stores(out: Path, customers_shift: float = 400.0) -> Path:
    """The stores model whose reference profile was built on stores with `customers_shift` more
    customers: a version whose drift reference differs from the committed one's."""
    shutil.copytree(STORES_DIR, out)
    data = generate_stores(seed=7)
    data["customers_count"] = (data["customers_count"] + customers_shift).round().astype("int64")
    build_profile(load_model(out), pd.DataFrame(data), target="success").save(profile_path(out))
    return out


def without_profile(out: Path) -> Path:
    """The committed stores model with no reference profile inside it."""
    shutil.copytree(STORES_DIR, out)
    profile_path(out).unlink()
    return out

"""Register the bundled stores model in an MLflow Model Registry, as a team's training code does
(log the model - its signature comes with it - from a run, register it, point an alias at it).

    MLFLOW_TRACKING_URI=sqlite:///runs/mlflow.db .venv/bin/python examples/register_model.py

prints the version it registered; run it again for the next version. Then
`modelmon profile --model models:/stores/1 ...` and `modelmon serve --model models:/stores@champion`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient


def register(model_dir: Path, name: str, alias: str) -> str:
    """Log `model_dir` as a run's `model` artifact, register it, and move `alias` to it."""
    mlflow.set_experiment("modelmon-examples")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), "model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    MlflowClient().set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/stores"), help="MLflow model folder")
    parser.add_argument("--name", default="stores", help="registered model name")
    parser.add_argument("--alias", default="champion", help="alias to point at the new version")
    args = parser.parse_args()
    version = register(args.model, args.name, args.alias)
    print(f"registered {args.model} as models:/{args.name}/{version} (models:/{args.name}@{args.alias}) "
          f"at {mlflow.get_tracking_uri()}")


if __name__ == "__main__":
    main()

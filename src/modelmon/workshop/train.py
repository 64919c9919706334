"""Train the embedded stores model and save it as an MLflow model modelmon can serve.

The model is saved in MLflow's `skops` format on purpose: loading it cannot run arbitrary
code the way a pickle can, which matters for a server that loads whatever directory it is given.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import pandas as pd
import yaml

from modelmon.model.files import MODEL_CONFIG_FILE
from modelmon.model.loading import load_model
from modelmon.model.profile import build_profile
from modelmon.model.reference import profile_path
from modelmon.workshop.data import CALIBRATION_ROWS, CALIBRATION_SEED, FEATURES, TARGET, generate_stores

# The workshop's histogram edges: items 1000..2750 by 250, customers 200..1600 by 200.
STORES_CONFIG = {
    "name": "stores",
    "target": TARGET,
    "classes": {0: "normal", 1: "success"},
    "positive_class": 1,
    "features": {
        "items_count": {"minimum": 0, "edges": list(range(1000, 2751, 250))},
        "customers_count": {"minimum": 0, "edges": list(range(200, 1601, 200))},
    },
}


def train_stores(data: pd.DataFrame, out: Path) -> Path:
    """Fit a scaled logistic regression and save model, settings and reference profile to `out`."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    x = data[list(FEATURES)].astype("int64")
    y = data[TARGET].astype("int64")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(random_state=0)).fit(x, y)
    if out.exists():
        shutil.rmtree(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            pipeline,
            str(out),
            signature=infer_signature(x, pipeline.predict(x)),
            input_example=x.head(3),
            serialization_format="skops",
            skops_trusted_types=_trusted_types(pipeline),
        )
    (out / MODEL_CONFIG_FILE).write_text(yaml.safe_dump(STORES_CONFIG, sort_keys=False))
    model = load_model(out)
    calibration = generate_stores(rows=CALIBRATION_ROWS, seed=CALIBRATION_SEED)
    build_profile(model, data, target=TARGET, calibration_data=calibration,
                  calibration_source=f"{CALIBRATION_ROWS} fresh generated stores (seed {CALIBRATION_SEED})"
                  ).save(profile_path(out))
    return out


def _trusted_types(pipeline: object) -> list[str]:
    """The non-default types skops must be told to trust for this pipeline (none beyond sklearn)."""
    import skops.io as sio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        untrusted: list[str] = sio.get_untrusted_types(data=sio.dumps(pipeline))
        return untrusted

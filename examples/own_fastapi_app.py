"""A team's own FastAPI app, shaped like the public workshop's: its own /predict, its own model
call. The lines marked `# modelmon` are all it takes to get modelmon's metrics, rules,
dashboards and alerts for it.

    MODEL_DIR=models/stores .venv/bin/uvicorn examples.own_fastapi_app:app --port 8000
    # or several workers, metrics summed across them:
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) MODEL_DIR=models/stores \\
        .venv/bin/gunicorn examples.own_fastapi_app:app -w 4 -k uvicorn.workers.UvicornWorker

Then `modelmon stack render --model models/stores` renders Prometheus (scraping this app's
/metrics), the rules, the dashboard and Alertmanager unchanged.
"""

from __future__ import annotations

import os

import mlflow.sklearn
import pandas as pd
from fastapi import FastAPI

from modelmon import Monitor  # modelmon

MODEL_DIR = os.environ.get("MODEL_DIR", "models/stores")

model = mlflow.sklearn.load_model(MODEL_DIR)
monitor = Monitor.from_model_dir(MODEL_DIR)  # modelmon: the model's inputs and reference profile

app = FastAPI(title="stores model")


@app.get("/predict")
def predict(items_count: int, customers_count: int) -> dict[str, object]:
    row = {"items_count": items_count, "customers_count": customers_count}
    frame = pd.DataFrame([row])
    prediction = model.predict(frame)
    probabilities = model.predict_proba(frame)
    monitor.observe(row, prediction, probabilities)  # modelmon: counts the row, never raises
    return {"prediction": int(prediction[0]), "probability": float(probabilities[0, 1])}


monitor.instrument(app)  # modelmon: GET /metrics, and the latency of every request

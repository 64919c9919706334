"""The model call and what monitoring observes of it, on validated columns: one path for the
server and for `modelmon backtest`, which replays traffic through it on a simulated clock.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .model import LoadedModel, Prediction
from .monitor import Monitor


class Predictor:
    """Predict on validated columns, observe through the model's Monitor, shape the answer."""

    def __init__(self, model: LoadedModel, monitor: Monitor, monitoring: bool = True) -> None:
        self.model = model
        self.monitor = monitor
        self.monitoring = monitoring
        self.features = monitor.features
        self.regression = monitor.regression

    def __call__(self, columns: dict[str, list[Any]], requests: int = 1) -> list[dict[str, Any]]:
        """Answers for the rows of `requests` requests predicted in one call."""
        arrays = self.model.columns(columns, self.features)
        start = time.perf_counter()
        prediction = self.model.predict_columns(arrays)
        return self.answer(arrays, prediction, time.perf_counter() - start, requests)

    def answer(self, arrays: dict[str, np.ndarray], prediction: Prediction, elapsed: float,
               requests: int = 1) -> list[dict[str, Any]]:
        """Observe a prediction of `requests` requests' rows and shape its answers."""
        monitor = self.monitor
        if self.regression:
            predicted = np.asarray(prediction.values, dtype="float64")
            if self.monitoring:
                monitor.observe_arrays(arrays, predicted, None, elapsed, requests)
            return [{"prediction": v if math.isfinite(v) else None} for v in predicted.tolist()]
        values = prediction.values.tolist()
        labels = monitor.labels(values)
        proba = prediction.probabilities
        positive = monitor.positive(proba)
        if self.monitoring:
            monitor.observe_arrays(arrays, values, proba, elapsed, requests)
        if proba is None:
            return [{"prediction": v, "label": label} for v, label in zip(values, labels)]
        names = monitor.class_labels
        if positive is None:
            return [{"prediction": v, "label": label, "probabilities": dict(zip(names, ps))}
                    for v, label, ps in zip(values, labels, proba.tolist())]
        return [{"prediction": v, "label": label, "probability": p, "probabilities": dict(zip(names, ps))}
                for v, label, p, ps in zip(values, labels, positive.tolist(), proba.tolist())]

"""The model call and what monitoring observes of it, on validated columns: one path for the
server and for `modelmon backtest`, which replays traffic through it on a simulated clock.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .metrics import ModelMetrics
from .model import LoadedModel, Prediction
from .profile import ReferenceProfile


class Predictor:
    """Predict on validated columns, observe metrics, shape the answer."""

    def __init__(self, model: LoadedModel, profile: ReferenceProfile, metrics: ModelMetrics,
                 monitoring: bool = True) -> None:
        self.model = model
        self.metrics = metrics
        self.monitoring = monitoring
        self.features = profile.served_features(model.features)
        self.regression = profile.regression
        self._labels = {c.value: c.label for c in profile.classes}
        classes = list(model.classes) if model.classes is not None else []
        self._positive = classes.index(profile.positive_class) if profile.positive_class in classes else None
        self._class_labels = [self._labels.get(c, str(c)) for c in classes]

    def __call__(self, columns: dict[str, list[Any]], requests: int = 1) -> list[dict[str, Any]]:
        """Answers for the rows of `requests` requests predicted in one call."""
        arrays = self.model.columns(columns, self.features)
        start = time.perf_counter()
        prediction = self.model.predict_columns(arrays)
        return self.answer(arrays, prediction, time.perf_counter() - start, requests)

    def answer(self, arrays: dict[str, np.ndarray], prediction: Prediction, elapsed: float,
               requests: int = 1) -> list[dict[str, Any]]:
        """Observe a prediction of `requests` requests' rows and shape its answers."""
        if self.regression:
            predicted = np.asarray(prediction.values, dtype="float64")
            if self.monitoring:
                self.metrics.observe_predict(elapsed, requests, predicted.size)
                self.metrics.observe(arrays, {}, None, predicted)
            return [{"prediction": v if math.isfinite(v) else None} for v in predicted.tolist()]
        values = prediction.values.tolist()
        labels = [self._labels.get(v, str(v)) for v in values]
        proba = prediction.probabilities
        positive = proba[:, self._positive] if proba is not None and self._positive is not None else None
        if self.monitoring:
            # Each request spent the batch's predict time in the model: one observation each.
            self.metrics.observe_predict(elapsed, requests, len(values))
            self.metrics.observe(arrays, _counts(labels), positive)
        if proba is None:
            return [{"prediction": v, "label": label} for v, label in zip(values, labels)]
        names = self._class_labels
        if positive is None:
            return [{"prediction": v, "label": label, "probabilities": dict(zip(names, ps))}
                    for v, label, ps in zip(values, labels, proba.tolist())]
        return [{"prediction": v, "label": label, "probability": p, "probabilities": dict(zip(names, ps))}
                for v, label, p, ps in zip(values, labels, positive.tolist(), proba.tolist())]


def _counts(labels: list[str]) -> dict[str, int]:
    if len(labels) == 1:
        return {labels[0]: 1}
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return counts

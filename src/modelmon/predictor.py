"""The model call and what monitoring observes of it, on validated columns: one path for the
server and for `modelmon backtest`, which replays traffic through it on a simulated clock.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .calibration import expected_confusion
from .metrics import ModelMetrics
from .model import LoadedModel, Prediction
from .profile import ReferenceProfile


def probability_classes(model: LoadedModel, profile: ReferenceProfile) -> tuple[str, ...]:
    """The labels of the model's probability columns, in order; empty without probabilities."""
    if not model.has_probabilities or model.classes is None or profile.regression:
        return ()
    labels = {c.value: c.label for c in profile.classes}
    return tuple(labels.get(c, str(c)) for c in model.classes)


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
        self._index = {c: i for i, c in enumerate(classes)}
        calibration = profile.calibration
        # A profile of another version of the model (other classes) estimates from raw probabilities.
        self._calibration = calibration if calibration and list(calibration.classes) == self._class_labels else None

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
            if proba is not None:
                self._observe_expected(values, proba)
        if proba is None:
            return [{"prediction": v, "label": label} for v, label in zip(values, labels)]
        names = self._class_labels
        if positive is None:
            return [{"prediction": v, "label": label, "probabilities": dict(zip(names, ps))}
                    for v, label, ps in zip(values, labels, proba.tolist())]
        return [{"prediction": v, "label": label, "probability": p, "probabilities": dict(zip(names, ps))}
                for v, label, p, ps in zip(values, labels, positive.tolist(), proba.tolist())]

    def _observe_expected(self, values: list[Any], proba: np.ndarray) -> None:
        """Each row's calibrated probabilities into the expected confusion counters (CBPE)."""
        index = np.array([self._index.get(v, -1) for v in values], dtype="int64")
        usable = (index >= 0) & np.isfinite(proba).all(axis=1)
        if not usable.all():
            index, proba = index[usable], proba[usable]
        calibrated = self._calibration.apply(proba) if self._calibration is not None else proba
        self.metrics.observe_expected(expected_confusion(index, calibrated))


def _counts(labels: list[str]) -> dict[str, int]:
    if len(labels) == 1:
        return {labels[0]: 1}
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return counts

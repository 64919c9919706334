"""The model call and what monitoring observes of it, on validated columns: one path for the
server and for `modelmon backtest`, which replays traffic through it on a simulated clock.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelmon.model.loading import LoadedModel, Prediction
from modelmon.monitoring.monitor import Monitor


@dataclass(frozen=True)
class Answers:
    """A batch's answers as columns: MLflow's /invocations sends `predictions` as they are, the
    prediction log keeps `logged()`, and only /predict makes one object per row (`rows()`),
    which for 10,000 rows costs more than the model call."""

    predictions: list[Any]  # the model's raw output per row (a regressor's value: None if not finite)
    labels: list[str] | None = None  # classifiers: the class label per row
    probabilities: np.ndarray | None = None  # shape (rows, classes), columns in class_labels order
    positive: np.ndarray | None = None  # binary models: the positive class' column
    class_labels: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.predictions)

    def __getitem__(self, part: slice) -> Answers:
        """The answers of some rows (a micro-batch's share of one request)."""
        return Answers(self.predictions[part], None if self.labels is None else self.labels[part],
                       None if self.probabilities is None else self.probabilities[part],
                       None if self.positive is None else self.positive[part], self.class_labels)

    def logged(self) -> list[str]:
        """What the prediction log keeps and a label is compared with: the class label, or a
        regressor's value as repr(float) (nan when it was not finite)."""
        if self.labels is not None:
            return self.labels
        return [repr(math.nan if v is None else float(v)) for v in self.predictions]

    def positive_list(self) -> list[float] | None:
        return None if self.positive is None else self.positive.tolist()

    def rows(self) -> list[dict[str, Any]]:
        """One object per row, as /predict answers."""
        if self.labels is None:
            return [{"prediction": v} for v in self.predictions]
        if self.probabilities is None:
            return [{"prediction": v, "label": label} for v, label in zip(self.predictions, self.labels)]
        names = self.class_labels
        if self.positive is None:
            return [{"prediction": v, "label": label, "probabilities": dict(zip(names, ps))}
                    for v, label, ps in zip(self.predictions, self.labels, self.probabilities.tolist())]
        return [{"prediction": v, "label": label, "probability": p, "probabilities": dict(zip(names, ps))}
                for v, label, p, ps in zip(self.predictions, self.labels, self.positive.tolist(),
                                           self.probabilities.tolist())]


class Predictor:
    """Predict on validated columns, observe through the model's Monitor, shape the answers."""

    def __init__(self, model: LoadedModel, monitor: Monitor, monitoring: bool = True) -> None:
        self.model = model
        self.monitor = monitor
        self.monitoring = monitoring
        self.features = monitor.features
        self.regression = monitor.regression

    def __call__(self, columns: dict[str, list[Any]], requests: int = 1) -> Answers:
        """Answers for the rows of `requests` requests predicted in one call."""
        arrays = self.model.columns(columns, self.features)
        start = time.perf_counter()
        prediction = self.model.predict_columns(arrays)
        return self.answer(arrays, prediction, time.perf_counter() - start, requests)

    def answer(self, arrays: dict[str, np.ndarray], prediction: Prediction, elapsed: float,
               requests: int = 1) -> Answers:
        """Observe a prediction of `requests` requests' rows and shape its answers."""
        monitor = self.monitor
        if self.regression:
            predicted = np.asarray(prediction.values, dtype="float64")
            if self.monitoring:
                monitor.observe_arrays(arrays, predicted, None, elapsed, requests)
            finite = np.isfinite(predicted)
            values = predicted.tolist() if finite.all() else [v if ok else None for v, ok in
                                                                zip(predicted.tolist(), finite.tolist())]
            return Answers(values)
        values = prediction.values.tolist()
        proba = prediction.probabilities
        labels = monitor.labels(values)
        if self.monitoring:
            monitor.observe_arrays(arrays, values, proba, elapsed, requests, labels)
        return Answers(values, labels, proba, monitor.positive(proba), monitor.class_labels)

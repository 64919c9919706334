"""Quality before the labels arrive: calibrated probabilities and the expected confusion matrix.

This is confidence-based performance estimation (CBPE, as NannyML names it), made live. If a
classifier's probabilities are calibrated - of the rows given probability p of class c, a
share p are of class c - then the expected number of rows predicted `a` that are truly `c`
is the sum, over the rows predicted `a`, of their probability of `c`. A sum is what a counter
holds: the server adds each row's calibrated probabilities to
`modelmon_expected_confusion_total{predicted, actual}` (each row adds 1 in all), and
Prometheus sums that matrix over replicas and windows exactly as it sums the confusion
matrix built from labels. Accuracy, precision, recall and F1 come from the same formulas on
either matrix (`quality_of`); this module is also the Python reference the promtool cases of
the estimated-quality rules are computed with.

Models are rarely calibrated as they come, so the profile fits a map per class: isotonic
(monotone, fitted by pool-adjacent-violators, one class against the rest) on rows the model
was not fitted on, kept as breakpoints and applied with linear interpolation; the row is then
renormalised to sum to 1. The expected calibration error before and after (after measured
cross-fitted: each half calibrated by a map fitted on the other) says how much it helped.

What it assumes: P(class | probability) is what it was on the calibration rows. Inputs may
drift - the estimate follows them, which is the point - but if what makes a row positive
changes (concept drift), the estimate stays confidently wrong. Labels that do arrive then
show realized accuracy clearly under the estimate: the `ModelConceptDrift` alert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ECE_BINS = 10  # equal-width confidence bins of the expected calibration error


@dataclass(frozen=True)
class Quality:
    """Accuracy, and precision/recall/F1 of the positive class (None without one)."""

    accuracy: float
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None


@dataclass(frozen=True)
class Calibration:
    """A classifier's calibration map (per class, in the model's class order) and what it did
    on the calibration rows."""

    classes: tuple[str, ...]  # class labels, in the order of the model's probability columns
    knots: tuple[tuple[float, ...], ...]  # per class: raw probabilities ...
    values: tuple[tuple[float, ...], ...]  # ... and the calibrated probability at each
    rows: int  # calibration rows
    source: str  # where they came from, in words
    ece_before: float
    ece_after: float  # cross-fitted
    reference: Quality  # realized on the calibration rows (the model's quality as it left training)
    # The reliability diagram: per confidence bin with rows, (mean confidence, accuracy, rows).
    reliability_before: tuple[tuple[float, float, int], ...] = ()
    reliability_after: tuple[tuple[float, float, int], ...] = ()

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, rows summing to 1 (a row the map zeroes keeps its raw one)."""
        return _apply(self.knots, self.values, probabilities)


def fit(probabilities: np.ndarray, actual: np.ndarray, classes: tuple[str, ...], source: str,
        positive: int | None) -> Calibration:
    """Fit the map on calibration rows: `probabilities` (rows x classes, the model's order),
    `actual` the index of each row's true class."""
    probabilities = np.asarray(probabilities, dtype="float64")
    actual = np.asarray(actual, dtype="int64")
    knots, values = _isotonic_map(probabilities, actual)
    halves = np.arange(actual.size) % 2 == 0
    crossed = np.empty_like(probabilities)
    for fitted, applied in ((halves, ~halves), (~halves, halves)):
        k, v = _isotonic_map(probabilities[fitted], actual[fitted], probabilities.shape[1])
        crossed[applied] = _apply(k, v, probabilities[applied])
    predicted = probabilities.argmax(axis=1)
    before, after = reliability(probabilities, actual), reliability(crossed, actual)
    return Calibration(
        classes=classes, knots=knots, values=values, rows=int(actual.size), source=source,
        ece_before=_ece(before), ece_after=_ece(after),
        reference=quality_of(confusion(predicted, actual, len(classes)), positive),
        reliability_before=before, reliability_after=after,
    )


def expected_confusion(predicted: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """matrix[a, c]: over the rows predicted class index `a`, the sum of their probability of
    class `c` (calibrated probabilities make it the expected count of such rows)."""
    k = probabilities.shape[1]
    matrix = np.zeros((k, k))
    np.add.at(matrix, np.asarray(predicted, dtype="int64"), probabilities)
    return matrix


def confusion(predicted: np.ndarray, actual: np.ndarray, classes: int) -> np.ndarray:
    """matrix[a, c]: rows predicted `a` whose true class is `c`."""
    matrix = np.zeros((classes, classes))
    np.add.at(matrix, (np.asarray(predicted, dtype="int64"), np.asarray(actual, dtype="int64")), 1.0)
    return matrix


def quality_of(matrix: np.ndarray, positive: int | None) -> Quality:
    """Accuracy, and the positive class's precision, recall and F1, of a confusion matrix
    (rows predicted, columns actual), realized or expected: the formulas of the recording rules."""
    total = float(matrix.sum())
    accuracy = float(np.trace(matrix)) / total if total > 0 else float("nan")
    if positive is None:
        return Quality(accuracy)
    hit = float(matrix[positive, positive])
    predicted, actual = float(matrix[positive].sum()), float(matrix[:, positive].sum())
    return Quality(
        accuracy,
        hit / predicted if predicted > 0 else None,
        hit / actual if actual > 0 else None,
        2 * hit / (predicted + actual) if predicted + actual > 0 else None,
    )


def expected_calibration_error(probabilities: np.ndarray, actual: np.ndarray, bins: int = ECE_BINS) -> float:
    """The top-label ECE: over equal-width bins of the predicted class's probability, the
    row-weighted gap between that probability and how often the prediction was right."""
    return _ece(reliability(probabilities, actual, bins))


def reliability(probabilities: np.ndarray, actual: np.ndarray, bins: int = ECE_BINS,
                ) -> tuple[tuple[float, float, int], ...]:
    """Per equal-width bin of the predicted class's probability that holds rows: their mean
    probability, how often the prediction was right, and how many rows."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == actual
    which = np.minimum((confidence * bins).astype("int64"), bins - 1)
    out = []
    for b in range(bins):
        rows = which == b
        if rows.any():
            out.append((float(confidence[rows].mean()), float(right[rows].mean()), int(rows.sum())))
    return tuple(out)


def _ece(bins: tuple[tuple[float, float, int], ...]) -> float:
    total = sum(rows for _, _, rows in bins)
    return sum(abs(confidence - right) * rows for confidence, right, rows in bins) / total if total else 0.0


def _isotonic_map(probabilities: np.ndarray, actual: np.ndarray, classes: int | None = None,
                  ) -> tuple[tuple[tuple[float, ...], ...], tuple[tuple[float, ...], ...]]:
    from sklearn.isotonic import IsotonicRegression  # the profile's dependency, not the server's

    knots, values = [], []
    for c in range(classes or probabilities.shape[1]):
        regression = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        regression.fit(probabilities[:, c], (actual == c).astype("float64"))
        knots.append(tuple(float(x) for x in regression.X_thresholds_))
        values.append(tuple(float(y) for y in regression.y_thresholds_))
    return tuple(knots), tuple(values)


def _apply(knots: tuple[tuple[float, ...], ...], values: tuple[tuple[float, ...], ...],
           probabilities: np.ndarray) -> np.ndarray:
    mapped = np.column_stack([np.interp(probabilities[:, c], knots[c], values[c]) for c in range(len(knots))])
    total = mapped.sum(axis=1, keepdims=True)
    return np.where(total > 0, mapped / np.where(total > 0, total, 1.0), probabilities)

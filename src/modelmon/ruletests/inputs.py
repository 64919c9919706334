"""Synthetic exporter inputs: the series two replicas of the server would export for given
traffic - class and rank counts, confusion and error counters, reference gauges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modelmon.contract import names as N
from modelmon.contract.buckets import LATENCY_BUCKETS, QUANTILE_BUCKETS
from modelmon.contract.names import bound_label
from modelmon.model.reference import CategoryProfile, ReferenceProfile
from modelmon.ruletests.case import INSTANCES, Case
from modelmon.settings import Settings
from modelmon.stats import calibration
from modelmon.stats.drift import bin_shares, ks_distance, psi

Confusion = Mapping[tuple[str, str], float]  # (actual, predicted) -> labels


def confusion_quality(confusion: Confusion, positive: str | None) -> dict[str, float]:
    """Accuracy, and precision/recall/F1 of `positive`, from a confusion matrix (the formulas
    of modelmon.stats.calibration, which serve realized and estimated quality alike)."""
    labels = sorted({label for cell in confusion for label in cell})
    matrix = np.zeros((len(labels), len(labels)))
    for (actual, predicted), value in confusion.items():
        matrix[labels.index(predicted), labels.index(actual)] += value
    quality = calibration.quality_of(matrix, labels.index(positive) if positive is not None else None)
    return {name: value for name, value in vars(quality).items() if value is not None}


def confusion_with_accuracy(profile: ReferenceProfile, accuracy: float, scale: float = 10.0,
                            skew: bool = False) -> dict[tuple[str, str], float]:
    """Labels per scrape summing to `scale`, a share `accuracy` of them right, every cell
    filled; `skew` spreads the errors unevenly, so precision and recall differ."""
    labels = [c.label for c in profile.classes]
    k = len(labels)
    off = [(a, p) for a in labels for p in labels if a != p]
    weights = [1.0 + i for i in range(len(off))] if skew else [1.0] * len(off)
    out = {(c, c): scale * accuracy / k for c in labels}
    out.update({cell: scale * (1 - accuracy) * w / sum(weights) for cell, w in zip(off, weights, strict=True)})
    return out


def healthy_confusion(profile: ReferenceProfile, settings: Settings) -> dict[tuple[str, str], float]:
    """Labels of a model comfortably above the accuracy floor (halfway from it to 1)."""
    return confusion_with_accuracy(profile, (1 + settings.accuracy_floor) / 2)


def _feedback_inputs(case: Case, profile: ReferenceProfile, per_replica: Sequence[Confusion]) -> None:
    for instance, confusion in zip(INSTANCES, per_replica):
        for (actual, predicted), per_step in confusion.items():
            case.counter(N.FEEDBACK.total, per_step, instances=[instance], model=profile.model,
                         actual=actual, predicted=predicted)


def _expected_inputs(case: Case, profile: ReferenceProfile, per_replica: Sequence[Confusion]) -> None:
    for instance, matrix in zip(INSTANCES, per_replica):
        for (actual, predicted), per_step in matrix.items():
            case.counter(N.EXPECTED_CONFUSION.total, per_step, instances=[instance], model=profile.model,
                         actual=actual, predicted=predicted)


def summed_confusion(per_replica: Sequence[Confusion]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for confusion in per_replica:
        for cell, value in confusion.items():
            out[cell] = out.get(cell, 0.0) + value
    return out


@dataclass(frozen=True)
class Errors:
    """A regressor's labels each scrape, on one replica: how many, and their errors."""

    count: float
    mae: float
    rmse: float
    bias: float  # |bias| <= mae: the over- and under-estimates are what make it

    @property
    def over(self) -> float:
        return self.count * (self.mae + self.bias) / 2

    @property
    def under(self) -> float:
        return self.count * (self.mae - self.bias) / 2


def errors_of(per_replica: Sequence[Errors]) -> dict[str, float]:
    """MAE, RMSE and bias of the labels of all replicas together."""
    count = sum(e.count for e in per_replica)
    return {"mae": sum(e.count * e.mae for e in per_replica) / count,
            "rmse": math.sqrt(sum(e.count * e.rmse**2 for e in per_replica) / count),
            "bias": sum(e.over - e.under for e in per_replica) / count}


def healthy_errors(profile: ReferenceProfile, count: float = 10.0) -> Errors:
    """Labels as far off as the model was on its training data."""
    e = profile.errors
    return Errors(count, e.mae, e.rmse, e.bias) if e is not None else Errors(count, 1.0, 1.25, 0.0)


def mix_of(profile: ReferenceProfile, rows: float) -> dict[str, float]:
    """Predicted rows per scrape by class label, shares as in training; a regressor's rows
    carry no class (`class=""`)."""
    if profile.regression:
        return {"": rows}
    return {c.label: c.prior * rows for c in profile.classes}


def category_reference(category: CategoryProfile) -> np.ndarray:
    """Training shares of each category and then `other`, in the series' order."""
    return np.array([*category.shares, category.other_share])


def category_labels(category: CategoryProfile) -> tuple[str, ...]:
    return (*category.values, N.OTHER)


def _rank_histogram(case: Case, family: N.Family, reference_family: N.Family, counts: np.ndarray,
                    reference: Sequence[float], **labels: str) -> None:
    """A rank histogram growing by `counts` per bin each scrape, and its reference CDF gauge."""
    cumulative = np.cumsum(counts)
    for bound, total in zip(QUANTILE_BUCKETS, cumulative):
        case.counter(family.bucket, float(total), le=bound_label(bound), **labels)
    case.counter(family.bucket, float(cumulative[-1]), le="+Inf", **labels)
    case.counter(family.count, float(cumulative[-1]), **labels)
    for bound, share in zip(QUANTILE_BUCKETS, reference):
        case.gauge(reference_family.name, share, **{N.BOUND: bound_label(bound)}, **labels)


def standard_inputs(case: Case, profile: ReferenceProfile, class_per_step: Mapping[str, float],
                     feature_counts: Mapping[str, np.ndarray] | None = None,
                     invalid_per_step: float = 0.0, errors_per_step: float = 0.0,
                     slow_bucket: int | None = None, confusion: Sequence[Confusion] | None = None,
                     requests: float | None = None, predicted: float | None = None,
                     categories: Mapping[str, np.ndarray] | None = None, missing: Mapping[str, float] | None = None,
                     predictions: np.ndarray | None = None, errors: Sequence[Errors] | None = None,
                     expected: Sequence[Confusion] | None = None) -> None:
    """Every metric the server exports, for a healthy server unless told otherwise
    (`slow_bucket`: every request answered within that latency bucket, not the 5 ms one;
    `requests`: prediction requests per step, by default one per predicted row; `predicted`:
    requests that reached the model, by default all of them; `categories`: each categorical
    input's values per category and `other`; `missing`: rows missing each nullable input;
    `predictions`: a regressor's predicted values per rank bin; `errors`: its labels, per
    replica; `expected`: a classifier's expected confusion counters, per replica)."""
    model = profile.model
    rows = sum(class_per_step.values())
    if profile.regression:
        for instance, e in zip(INSTANCES, errors or [healthy_errors(profile)] * len(INSTANCES), strict=True):
            one = [instance]
            case.counter(N.ABSOLUTE_ERROR.count, e.count, instances=one, model=model)
            case.counter(N.ABSOLUTE_ERROR.sum, e.count * e.mae, instances=one, model=model)
            case.counter(N.SQUARED_ERROR.total, e.count * e.rmse**2, instances=one, model=model)
            case.counter(N.SIGNED_ERROR.total, e.over, instances=one, model=model, direction="over")
            case.counter(N.SIGNED_ERROR.total, e.under, instances=one, model=model, direction="under")
        assert profile.prediction is not None, "a regressor's profile has its predictions'"
        reference = profile.prediction.quantile_reference
        bins = predictions if predictions is not None else bin_shares(reference) * rows
        _rank_histogram(case, N.PREDICTION_QUANTILE, N.PREDICTION_QUANTILE_REFERENCE, bins, reference, model=model)
    else:
        _feedback_inputs(case, profile, confusion or [healthy_confusion(profile, case.settings)] * len(INSTANCES))
        _expected_inputs(case, profile, expected or [])
    for category in profile.categories:
        counts = (categories or {}).get(category.name)
        if counts is None:
            counts = category_reference(category) * profile.rows
        for label, per_step, share in zip(category_labels(category), counts, category_reference(category),
                                          strict=True):
            case.counter(N.FEATURE_CATEGORY.total, float(per_step), model=model, feature=category.name, category=label)
            case.gauge(N.FEATURE_CATEGORY_REFERENCE.name, share, model=model, feature=category.name, category=label)
    for nullable in profile.nullable:
        per_step = (missing or {}).get(nullable.name, nullable.missing_share * rows)
        case.counter(N.FEATURE_MISSING.total, per_step, model=model, feature=nullable.name)
        case.gauge(N.FEATURE_MISSING_REFERENCE.name, nullable.missing_share, model=model, feature=nullable.name)
    for label, per_step in class_per_step.items():
        case.counter(N.PREDICTIONS.total, per_step, model=model, **{"class": label})
    for c in profile.classes:
        case.gauge(N.PREDICTION_REFERENCE_RATIO.name, c.prior, model=model, **{"class": c.label})
    requests = sum(class_per_step.values()) if requests is None else requests
    case.counter(N.MODEL_PREDICT_SECONDS.count, requests if predicted is None else predicted, model=model)
    case.counter(N.INVALID_REQUESTS.total, invalid_per_step, model=model, reason="wrong_type")
    # Successes through /predict, failures and the latency buckets through /invocations (one
    # set of buckets keeps the cases small): a rule that read one route alone misses the
    # traffic, the errors or the latency.
    case.counter(N.REQUEST_DURATION.count, requests - errors_per_step,
                 handler=N.PREDICT_ROUTE, method="POST", status="2xx")
    case.counter(N.REQUEST_DURATION.count, errors_per_step,
                 handler=N.INVOCATIONS_ROUTE, method="POST", status="5xx")
    fast_bound = LATENCY_BUCKETS[3]  # 5 ms
    for bound in (*LATENCY_BUCKETS, math.inf):
        done = requests if bound >= (fast_bound if slow_bucket is None else LATENCY_BUCKETS[slow_bucket]) else 0.0
        le = "+Inf" if math.isinf(bound) else bound_label(bound)
        case.counter(N.REQUEST_DURATION.bucket, done, handler=N.INVOCATIONS_ROUTE, method="POST", le=le)
    case.gauge("up", 1.0)
    for feature in profile.features:
        counts = (feature_counts or {}).get(feature.name)
        if counts is None:
            counts = reference_counts(feature.quantile_reference, feature.count)
        _rank_histogram(case, N.FEATURE_QUANTILE, N.FEATURE_QUANTILE_REFERENCE, counts, feature.quantile_reference,
                        model=model, feature=feature.name)


def reference_counts(reference_cdf: Sequence[float], rows: int) -> np.ndarray:
    """Per-bin counts that reproduce the reference shares exactly (they are k/rows, for the
    rows that had a value)."""
    counts: np.ndarray = np.rint(bin_shares(reference_cdf) * rows)
    return counts


def _drifted_counts(profile: ReferenceProfile, name: str, shift_sd: float) -> np.ndarray:
    """Rank-bin counts of values drawn from the training distribution shifted by `shift_sd` sds."""
    feature = profile.feature(name)
    rng = np.random.default_rng(11)
    values = rng.normal(feature.mean + shift_sd * feature.std, feature.std, 1000)
    ranks = np.sort(feature.rank(values))
    cdf = np.searchsorted(ranks, QUANTILE_BUCKETS, side="right")
    return np.diff(cdf, prepend=0).astype(float)


def drift_past(profile: ReferenceProfile, name: str, settings: Settings) -> np.ndarray:
    """The mildest of a few shifts whose PSI and KS both pass their thresholds (by 10 %), so
    the alert fires whatever the thresholds; all values in the top bin as a last resort."""
    reference = profile.feature(name).quantile_reference
    for shift in (1.5, 3.0, 6.0):
        counts = _drifted_counts(profile, name, shift)
        cdf = np.cumsum(counts) / counts.sum()
        if (psi(bin_shares(cdf), bin_shares(reference)) > 1.1 * settings.psi_threshold
                and ks_distance(cdf, reference) > 1.1 * settings.ks_threshold):
            return counts
    counts = np.zeros(len(QUANTILE_BUCKETS))
    counts[-1] = 1000.0
    return counts


def slow_bucket_index(threshold: float) -> int:
    """The latency bucket whose requests make the p99 (interpolated in the bucket) pass `threshold`."""
    for k in range(1, len(LATENCY_BUCKETS)):
        if p_in_bucket(k, 0.99) > threshold:
            return k
    raise ValueError(f"latency threshold {threshold} s is beyond the largest latency bucket")


def p_in_bucket(k: int, q: float) -> float:
    """histogram_quantile(q) when every observation is in bucket k: linear within it."""
    lower = LATENCY_BUCKETS[k - 1]
    return lower + (LATENCY_BUCKETS[k] - lower) * q


def label_inputs(case: Case, profile: ReferenceProfile, class_per_step: Mapping[str, float],
                  confusion: Sequence[Confusion], expected: Sequence[Confusion]) -> None:
    """Only what the quality rules read: predictions, labels and expected confusion (promtool
    evaluates every rule at every step; without inputs the others cost nothing)."""
    _feedback_inputs(case, profile, confusion)
    _expected_inputs(case, profile, expected)
    for label, per_step in class_per_step.items():
        case.counter(N.PREDICTIONS.total, per_step, model=profile.model, **{"class": label})

"""`promtool test rules` cases for every generated rule, with expectations computed in Python.

Each case feeds synthetic series from two instances of the server (so every ratio is checked
to add up across replicas), evaluates the recorded series against values computed here with
`modelmon.stats.drift` and `modelmon.stats.evidence`, and checks each alert fires when it should, only
after its `for`, and not under the traffic guard. The boundary cases put every statistic just
past and just inside its threshold and every count just over and under what it needs (the
count that makes the effect evidence, or the traffic guard where the effect is far past its
threshold), with what must fire computed by a Python model of the alerts; abrupt changes check
the fast branch evaluation by evaluation; a change case makes every counter change pace inside
its window. `tests.mutants` checks that these cases catch wrong rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelmon.contract import alerts as A
from modelmon.contract import names as N
from modelmon.contract.buckets import LATENCY_BUCKETS, QUANTILE_BUCKETS
from modelmon.contract.names import bound_label
from modelmon.model.profile import CategoryProfile, FeatureProfile, ReferenceProfile
from modelmon.rules.files import (
    JOB,
    LATENCY_QUANTILES,
    Alert,
    Names,
    alerts,
    dashboard_uid,
    dump_yaml,
    group_names,
    low_rate_alerted,
)
from modelmon.settings import Settings, seconds
from modelmon.stats import calibration
from modelmon.stats.drift import bin_shares, ks_distance, psi, total_variation
from modelmon.stats.evidence import ks_critical, needed, psi_critical, wilson_upper, z_of

INSTANCES = ("replica-a:8000", "replica-b:8000")
TOLERANCE = 1e-6


def _labels(**labels: str) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _render(template: str, labels: Mapping[str, str], value: float) -> str:
    """What Prometheus renders for the template forms alerts use (see rules.Alert)."""

    def replace(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("$labels."):
            return labels[expr.removeprefix("$labels.")]
        if expr == "$value | humanizePercentage":
            return f"{value * 100:.4g}%"
        if expr == '$value | printf "%.3f"':
            return f"{value:.3f}"
        raise ValueError(f"unsupported template form {{{{ {expr} }}}}")

    return re.sub(r"\{\{(.*?)\}\}", replace, template)


def _duration(interval: float) -> str:
    return f"{int(interval)}s" if interval >= 1 else f"{int(interval * 1000)}ms"


class _Case:
    """One promtool test group: series from two replicas, expressions and alerts to check."""

    def __init__(self, name: str, settings: Settings, steps: int, interval: float) -> None:
        self.name = name
        self.settings = settings
        self.interval = interval
        self.steps = steps
        self.series: list[dict[str, str]] = []
        self.rates: list[float | None] = []  # each series' growth per step (None: a gauge)
        self.exprs: list[dict[str, Any]] = []
        self.alert_tests: list[dict[str, Any]] = []

    def counter(self, metric: str, per_step: float, instances: Sequence[str] = INSTANCES, **labels: str) -> None:
        """A counter growing by `per_step` every scrape, on each replica."""
        for instance in instances:
            self.series.append({
                "series": metric + _labels(job=JOB, instance=instance, **labels),
                "values": f"0+{float(per_step)!r}x{self.steps}",
            })
            self.rates.append(float(per_step))

    def changing_to(self, after: _Case, step: int) -> None:
        """From `step` on, each counter grows as in `after` (the same series, other rates)."""
        later = {series["series"]: rate for series, rate in zip(after.series, after.rates, strict=True)}
        assert set(later) == {series["series"] for series in self.series}, "the same series before and after"
        for series, a in zip(self.series, self.rates, strict=True):
            b = later[series["series"]]
            if a is not None and b is not None:
                # promtool adds `a` step by step; starting the second run a hair above a * step
                # keeps a rounding error from reading as a counter reset (which rate() would
                # count as a whole new counter).
                start = a * step * (1 + 1e-12) + b
                series["values"] = f"0+{a!r}x{step} {start!r}+{b!r}x{self.steps - step - 1}"

    def gauge(self, metric: str, value: float, instances: Sequence[str] = INSTANCES, **labels: str) -> None:
        for instance in instances:
            self.series.append({
                "series": metric + _labels(job=JOB, instance=instance, **labels),
                "values": f"{float(value)!r}+0x{self.steps}",
            })
            self.rates.append(None)

    def expect(self, expr: str, at: float, labels: Mapping[str, str], value: float) -> None:
        """`expr` at `at` seconds equals `value` within TOLERANCE (checked inside Prometheus)."""
        if not math.isfinite(value):
            raise ValueError(f"{expr}: expected value {value} is not finite")
        self.exprs.append({
            "expr": f"abs({expr}{_labels(**labels)} - {float(value)!r}) < bool {TOLERANCE}",
            "eval_time": f"{int(at)}s",
            "exp_samples": [{"labels": _labels(**labels), "value": 1}],
        })

    def alert(self, alert: Alert, at: float, firing: Sequence[tuple[Mapping[str, str], float]], url: str) -> None:
        expected = []
        for labels, value in firing:
            all_labels = {**labels, **alert.labels, "severity": alert.severity}
            expected.append({
                "exp_labels": all_labels,
                "exp_annotations": {
                    "summary": _render(alert.summary, all_labels, value),
                    "description": _render(alert.description, all_labels, value),
                    "dashboard": url,
                },
            })
        self.alert_tests.append({"eval_time": f"{int(at)}s", "alertname": alert.name, "exp_alerts": expected})

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "interval": _duration(self.interval),
            "input_series": self.series,
            "promql_expr_test": self.exprs,
            "alert_rule_test": self.alert_tests,
        }


Confusion = Mapping[tuple[str, str], float]  # (actual, predicted) -> labels


def quality_of(confusion: Confusion, positive: str | None) -> dict[str, float]:
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


def _feedback_inputs(case: _Case, profile: ReferenceProfile, per_replica: Sequence[Confusion]) -> None:
    for instance, confusion in zip(INSTANCES, per_replica):
        for (actual, predicted), per_step in confusion.items():
            case.counter(N.FEEDBACK.total, per_step, instances=[instance], model=profile.model,
                         actual=actual, predicted=predicted)


def _expected_inputs(case: _Case, profile: ReferenceProfile, per_replica: Sequence[Confusion]) -> None:
    for instance, matrix in zip(INSTANCES, per_replica):
        for (actual, predicted), per_step in matrix.items():
            case.counter(N.EXPECTED_CONFUSION.total, per_step, instances=[instance], model=profile.model,
                         actual=actual, predicted=predicted)


def _summed(per_replica: Sequence[Confusion]) -> dict[tuple[str, str], float]:
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


def _category_labels(category: CategoryProfile) -> tuple[str, ...]:
    return (*category.values, N.OTHER)


def _rank_histogram(case: _Case, family: N.Family, reference_family: N.Family, counts: np.ndarray,
                    reference: Sequence[float], **labels: str) -> None:
    """A rank histogram growing by `counts` per bin each scrape, and its reference CDF gauge."""
    cumulative = np.cumsum(counts)
    for bound, total in zip(QUANTILE_BUCKETS, cumulative):
        case.counter(family.bucket, float(total), le=bound_label(bound), **labels)
    case.counter(family.bucket, float(cumulative[-1]), le="+Inf", **labels)
    case.counter(family.count, float(cumulative[-1]), **labels)
    for bound, share in zip(QUANTILE_BUCKETS, reference):
        case.gauge(reference_family.name, share, **{N.BOUND: bound_label(bound)}, **labels)


def _standard_inputs(case: _Case, profile: ReferenceProfile, class_per_step: Mapping[str, float],
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
        for label, per_step, share in zip(_category_labels(category), counts, category_reference(category),
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


def _drift_past(profile: ReferenceProfile, name: str, settings: Settings) -> np.ndarray:
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


def _slow_bucket(threshold: float) -> int:
    """The latency bucket whose requests make the p99 (interpolated in the bucket) pass `threshold`."""
    for k in range(1, len(LATENCY_BUCKETS)):
        if _p_in_bucket(k, 0.99) > threshold:
            return k
    raise ValueError(f"latency threshold {threshold} s is beyond the largest latency bucket")


def _p_in_bucket(k: int, q: float) -> float:
    """histogram_quantile(q) when every observation is in bucket k: linear within it."""
    lower = LATENCY_BUCKETS[k - 1]
    return lower + (LATENCY_BUCKETS[k] - lower) * q


# -- Boundary cases: each alert just past and just inside its threshold, just over and under
# its traffic guard, and checked halfway through its `for`. What should fire is computed by
# a Python model of the alerts below, so every case checks every alert, and a rule whose
# threshold, guard, window or `for` is off by a factor of two fails one of them.

FAST_BUCKET = 3  # answers within 5 ms


@dataclass(frozen=True)
class Traffic:
    """What each of the two replicas counts every scrape, steady over the whole case."""

    classes: Mapping[str, float]  # predicted rows per class
    features: Mapping[str, np.ndarray]  # rows per rank bin, per feature
    requests: float  # prediction requests answered (2xx and 5xx)
    predicted: float  # requests that reached the model (the invalid ratio's other part)
    invalid: float = 0.0
    errors: float = 0.0  # of the requests, answered 5xx
    slow_bucket: int = FAST_BUCKET  # every answer within this latency bucket
    categories: Mapping[str, np.ndarray] | None = None  # values per category (None: training shares)
    missing: Mapping[str, float] | None = None  # rows missing each nullable input (None: training share)
    predictions: np.ndarray | None = None  # a regressor's rows per rank bin (None: as in training)

    def write(self, case: _Case, profile: ReferenceProfile) -> None:
        _standard_inputs(case, profile, self.classes, feature_counts=self.features, invalid_per_step=self.invalid,
                         errors_per_step=self.errors, slow_bucket=self.slow_bucket, requests=self.requests,
                         predicted=self.predicted, categories=self.categories, missing=self.missing,
                         predictions=self.predictions)

    def category_counts(self, category: CategoryProfile, profile: ReferenceProfile) -> np.ndarray:
        counts = (self.categories or {}).get(category.name)
        return category_reference(category) * profile.rows if counts is None else counts

    def missing_rows(self, nullable: FeatureProfile | CategoryProfile) -> float:
        default = nullable.missing_share * sum(self.classes.values())
        return (self.missing or {}).get(nullable.name, default)

    def prediction_bins(self, profile: ReferenceProfile) -> np.ndarray:
        assert profile.prediction is not None
        if self.predictions is not None:
            return self.predictions
        return np.asarray(bin_shares(profile.prediction.quantile_reference) * sum(self.classes.values()))


@dataclass(frozen=True)
class _Condition:
    """One alert series' condition under steady traffic: its statistic past the threshold
    or not, and its traffic guard: `per_step` more of the guarded count each scrape (both
    replicas), counted over `window` seconds, needing `guard`."""

    alert: str
    labels: Mapping[str, str]
    value: float
    past: bool
    per_step: float
    window: float
    guard: float
    needed: float | None = 1.0  # the count at which the effect becomes evidence (None: never)

    def active_from(self, interval: float) -> float | None:
        """The first evaluation at which the condition holds (None: never)."""
        if not self.past or self.needed is None:
            return None
        guard = max(self.guard, self.needed)
        if self.per_step * self.window / interval < guard * (1 - 1e-9):
            return None
        # Counters start at 0, so the guarded increase at t < window is per_step * t / interval.
        steps = max(1, math.ceil(guard / self.per_step - 1e-9))
        return steps * interval


# -- The Python model of the evidence (modelmon.stats.evidence) that the rate and drift alerts need
# besides their effect: the count at which an effect becomes evidence.

def wilson_needed(share: float, ceiling: float, s: Settings) -> float | None:
    """Rows at which the upper bound of a share is under `ceiling`."""
    if share >= ceiling:
        return None
    z = z_of(s.confidence)
    return needed(lambda n: wilson_upper(share, n, z) < ceiling)


def positive_needed(share: float, s: Settings) -> float | None:
    """Rows at which the positive share's upper bound is under the floor."""
    return wilson_needed(share, s.positive_rate_floor, s)


def estimated_needed(accuracy: float, s: Settings) -> float | None:
    """Rows at which an estimated accuracy is evidence of a model under the accuracy floor."""
    return wilson_needed(accuracy, s.accuracy_floor, s)


def concept_needed(accuracy: float, estimated: float, s: Settings) -> float | None:
    """Labels at which their accuracy is evidence of a model worse than its estimate by the margin."""
    return wilson_needed(accuracy, estimated - s.concept_drift_margin, s)


def drift_needed(psi_value: float, psi_threshold: float, bins: int, reference_count: float, s: Settings,
                 ks_value: float | None = None, ks_threshold: float = 1.0) -> float | None:
    """Values at which a drift is evidence: PSI past its threshold and its critical value, on
    `min_per_bin` values per bin, or KS (where there is one) past both of its own; the fewer
    of the two."""
    counts: list[float | None] = []
    if psi_value > psi_threshold:
        psi_count = needed(lambda n: psi_value > psi_critical(n, reference_count, bins, s.confidence))
        if psi_count is not None:
            counts.append(max(psi_count, float(s.min_per_bin * bins)))
    if ks_value is not None and ks_value > ks_threshold:
        counts.append(needed(lambda n: ks_value > ks_critical(n, reference_count, s.confidence)))
    found = [c for c in counts if c is not None]
    return min(found) if found else None


def _conditions(profile: ReferenceProfile, s: Settings, traffic: Traffic) -> list[_Condition]:
    """The steady-state condition of every alert but ModelServerDown and ModelQualityDrop."""
    model = {"model": profile.model}
    job = {"job": JOB}
    w, d = seconds(s.rate_window), seconds(s.drift_window)
    rows = sum(traffic.classes.values())
    out = []
    if profile.positive is not None and low_rate_alerted(profile, s) and rows:
        ratio = traffic.classes.get(profile.positive.label, 0.0) / rows
        out.append(_Condition(A.LOW_POSITIVE_RATE, model, ratio, ratio < s.positive_rate_floor, 2 * rows, w,
                              0.0, positive_needed(ratio, s)))
    if rows:
        value, count = _prediction_drift(profile, s, traffic.prediction_bins(profile) if profile.regression else
                                         np.array([traffic.classes.get(c.label, 0.0) for c in profile.classes]))
        out.append(_Condition(A.PREDICTION_DRIFT, model, value, count is not None, 2 * rows, d, 0.0, count))
    for f in profile.features:
        counts = traffic.features[f.name]
        value, count = _feature_drift(f, s, counts)
        out.append(_Condition(A.FEATURE_DRIFT, {**model, "feature": f.name}, value, count is not None,
                              2 * counts.sum(), d, 0.0, count))
    for category in profile.categories:
        counts = traffic.category_counts(category, profile)
        value, count = _category_drift(category, s, counts)
        out.append(_Condition(A.FEATURE_DRIFT, {**model, "feature": category.name}, value, count is not None,
                              2 * counts.sum(), d, 0.0, count))
    for nullable in profile.nullable if rows else ():
        share = traffic.missing_rows(nullable) / rows
        out.append(_Condition(A.FEATURE_MISSING, {**model, "feature": nullable.name}, share,
                              abs(share - nullable.missing_share) > s.missing_share_tolerance, 2 * rows, d,
                              s.min_drift_samples))
    checked = traffic.invalid + traffic.predicted
    if checked:
        ratio = traffic.invalid / checked
        out.append(_Condition(A.INVALID_INPUT_RATE, model, ratio, ratio > s.invalid_ratio_threshold, 2 * checked,
                              w, s.min_samples))
    if traffic.requests:
        ratio = traffic.errors / traffic.requests
        out.append(_Condition(A.SERVER_ERRORS, job, ratio, ratio > s.error_ratio_threshold, 2 * traffic.requests,
                              w, s.min_samples))
        p99 = _p_in_bucket(traffic.slow_bucket, 0.99)
        out.append(_Condition(A.HIGH_LATENCY, job, p99, p99 > s.latency_p99_seconds, 2 * traffic.requests, w,
                              s.min_samples))
    return out


def _outcomes(profile: ReferenceProfile) -> int:
    """Bins of the predictions' PSI: a regressor's rank bins, else the classes."""
    return len(QUANTILE_BUCKETS) if profile.regression else len(profile.classes)


def _prediction_drift(profile: ReferenceProfile, s: Settings, counts: np.ndarray,
                      factor: float = 1.0) -> tuple[float, float | None]:
    """PSI of the predictions (class counts, or a regressor's rows per rank bin) and the count
    at which it is evidence past `factor` times the thresholds (None: never)."""
    rows = float(counts.sum())
    if profile.regression:
        assert profile.prediction is not None
        reference = profile.prediction.quantile_reference
        live = np.cumsum(counts) / rows
        value = psi(bin_shares(live), bin_shares(reference))
        return value, drift_needed(value, factor * s.prediction_psi_threshold, len(QUANTILE_BUCKETS), profile.rows, s,
                                   ks_distance(live, reference), factor * s.ks_threshold)
    value = psi(counts / rows, [c.prior for c in profile.classes])
    return value, drift_needed(value, factor * s.prediction_psi_threshold, len(profile.classes), profile.rows, s)


def _feature_drift(f: FeatureProfile, s: Settings, counts: np.ndarray,
                   factor: float = 1.0) -> tuple[float, float | None]:
    live = np.cumsum(counts) / counts.sum()
    value = psi(bin_shares(live), bin_shares(f.quantile_reference))
    return value, drift_needed(value, factor * s.psi_threshold, len(QUANTILE_BUCKETS), f.count, s,
                               ks_distance(live, f.quantile_reference), factor * s.ks_threshold)


def _category_drift(category: CategoryProfile, s: Settings, counts: np.ndarray,
                    factor: float = 1.0) -> tuple[float, float | None]:
    value = psi(counts / counts.sum(), category_reference(category))
    return value, drift_needed(value, factor * s.psi_threshold, len(category.values) + 1, category.count, s)


def _check_alerts(case: _Case, conditions: Sequence[_Condition], alerts_by_name: Mapping[str, Alert],
                  at: float, url: str) -> None:
    """Every alert of `conditions` at `at`: firing exactly where the model says it must."""
    hold = seconds(case.settings.alert_for)
    for name in dict.fromkeys(c.alert for c in conditions):
        firing = []
        for c in conditions:
            start = c.active_from(case.interval)
            if c.alert == name and start is not None and at >= start + hold:
                firing.append((c.labels, c.value))
        case.alert(alerts_by_name[name], at, firing, url)


def _per_step(count: float, window: float, interval: float) -> float:
    """Per-replica count each scrape so that both replicas add up to `count` per window."""
    return count * interval / window / 2


def _solve(f: Any, target: float, low: float, high: float) -> float | None:
    """x in [low, high] with f(x) = target for an increasing f, by bisection; None if out of reach."""
    if not f(low) <= target <= f(high):
        return None
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if f(mid) < target else (low, mid)
    return (low + high) / 2


def _tilted(reference: np.ndarray, signs: np.ndarray, statistic: Any, target: float) -> np.ndarray | None:
    """Bin shares `reference * (1 + sign * x)`, renormalised, with x chosen so that
    `statistic(shares)` is `target` (None if no x in [0, 1) reaches it)."""

    def shares(x: float) -> np.ndarray:
        raw = reference * (1 + signs * x)
        return np.asarray(raw / raw.sum())

    x = _solve(lambda x: statistic(shares(x)), target, 0.0, 0.999)
    return None if x is None else shares(x)


def _psi_bins(reference: np.ndarray, target: float) -> np.ndarray | None:
    """Bin shares whose PSI against `reference` is `target` while their CDF stays close to it:
    every other bin that holds values up by a factor, the rest down (KS at most one bin's
    change; empty bins, as a discrete input has, are skipped so the signs still alternate)."""
    held = np.flatnonzero(reference > 0)
    signs = np.zeros(len(reference))
    signs[held] = np.where(np.arange(held.size) % 2 == 0, 1.0, -1.0)
    return _tilted(reference, signs, lambda shares: psi(shares, reference), target)


def _ks_bins(reference: np.ndarray, target: float) -> np.ndarray | None:
    """Bin shares whose KS distance from `reference` is `target`: the lower half of the bins
    down by a factor, the upper half up (the smallest PSI for that KS)."""
    signs = np.where(np.arange(len(reference)) < len(reference) // 2, -1.0, 1.0)
    return _tilted(reference, signs, lambda shares: ks_distance(np.cumsum(shares), np.cumsum(reference)), target)


def _ks_alone(reference: np.ndarray, ks_threshold: float, psi_threshold: float) -> np.ndarray | None:
    """Bins with KS just past its threshold and PSI under its own, if any such are near."""
    # Nearest first: the count KS needs to be evidence then exceeds the traffic guard.
    candidates = [_ks_bins(reference, factor * ks_threshold) for factor in (1.1, 1.05, 1.25, 1.5, 1.02)]
    found = [b for b in candidates if b is not None]
    alone = [b for b in found if psi(b, reference) <= psi_threshold]
    return alone[0] if alone else (found[-1] if found else None)


def _class_shares(profile: ReferenceProfile, target_psi: float) -> dict[str, float] | None:
    """Class shares with PSI `target_psi` against the priors, the positive class (if any) above
    its prior so the low-rate alert stays out of it: every share moved toward one class."""
    priors = np.array([c.prior for c in profile.classes])
    up = [c.label for c in profile.classes].index(profile.positive.label) if profile.positive else 0

    def shares(x: float) -> np.ndarray:
        out = priors * (1 - x)
        out[up] += x
        return out

    x = _solve(lambda x: psi(shares(x), priors), target_psi, 0.0, 0.999)
    return None if x is None else {c.label: float(v) for c, v in zip(profile.classes, shares(x), strict=True)}


def _past(threshold: float, above: bool) -> float:
    """Just past a threshold: within a factor of two of it, so a doubled or halved one errs."""
    return 1.5 * threshold if above else 0.75 * threshold


def _inside(threshold: float, above: bool, ceiling: float = 1.0) -> float:
    """Just inside: within a factor of two, and under `ceiling` (ratios stay ratios)."""
    return 0.75 * threshold if above else min(1.5 * threshold, (ceiling + threshold) / 2)


def _latency_bucket(threshold: float, past: bool) -> int:
    """The first bucket whose p99 passes `threshold`, or the last whose p99 does not."""
    if past:
        return _slow_bucket(threshold)
    inside = [k for k in range(1, len(LATENCY_BUCKETS)) if _p_in_bucket(k, 0.99) <= threshold]
    return inside[-1] if inside else FAST_BUCKET


def _first(candidates: Iterable[Any]) -> Any:
    return next((c for c in candidates if c is not None), None)


def _targets(threshold: float, past: bool, far: bool) -> list[float]:
    """Values of a statistic that alerts above `threshold`: just past it, far past it (where
    the traffic guard, not the evidence, decides), or just inside it."""
    if not past:
        return [_inside(threshold, True, 1e9)]
    return [m * threshold for m in (8.0, 4.0, 2.5, 2.0)] if far else [_past(threshold, True)]


def _boundary_traffic(profile: ReferenceProfile, s: Settings, interval: float, past: bool, volume: float,
                      prediction_psi: bool = False, ks_alone: bool = False, far: bool = False,
                      factor: float = 1.0, window: float | None = None) -> Traffic | None:
    """Every statistic just past (or inside) its threshold, each guarded count `volume` times
    what it needs over its window: the traffic guard or, past the threshold, the count at
    which the effect becomes evidence, whichever is more. `far`: statistics far past their
    thresholds, so the guard decides. `prediction_psi`: the class shares play
    ModelPredictionDrift's part instead of ModelLowPositiveRate's (None when no shares have
    the PSI asked for). `ks_alone`: every numeric input has its KS past alone (the PSI branch
    is the first input's otherwise, the KS branch the last's: one input needs both).
    `factor` and `window`: the fast branch's (drift thresholds times the factor, every
    rate and drift window the short one)."""
    w, d = seconds(s.rate_window), seconds(s.drift_window)
    if window is not None:
        w = d = window
    positive = profile.positive
    predictions = None

    def count(need: float | None, bins: int) -> float:
        return volume * (s.min_per_bin * bins if need is None else need)

    if profile.regression:
        # A regressor's predicted values: their PSI alone past (or inside) the threshold in the
        # prediction part, their KS alone in the other.
        assert profile.prediction is not None
        reference_bins = bin_shares(profile.prediction.quantile_reference)
        if prediction_psi:
            moved = _first(_psi_bins(reference_bins, t)
                           for t in _targets(factor * s.prediction_psi_threshold, past, far))
        elif past and not far:
            moved = _ks_alone(reference_bins, factor * s.ks_threshold, factor * s.prediction_psi_threshold)
        else:
            moved = _first(_ks_bins(reference_bins, t) for t in _targets(factor * s.ks_threshold, past, far))
        if moved is None:
            return None
        shares = {"": 1.0}
        rows = _per_step(count(_prediction_drift(profile, s, moved, factor)[1], _outcomes(profile)), d, interval)
        predictions = moved * rows
    elif prediction_psi:
        class_shares = _first(_class_shares(profile, t)
                              for t in _targets(factor * s.prediction_psi_threshold, past, far))
        if class_shares is None:
            return None
        shares = class_shares
        counts = np.array([shares[c.label] for c in profile.classes])
        rows = _per_step(count(_prediction_drift(profile, s, counts, factor)[1], _outcomes(profile)), d, interval)
    elif positive is not None and low_rate_alerted(profile, s):
        floor = s.positive_rate_floor
        p = (floor / 20 if far else _past(floor, False)) if past else _inside(floor, False)
        others = [c for c in profile.classes if c.label != positive.label]
        rest = sum(c.prior for c in others)
        shares = {positive.label: p, **{c.label: (1 - p) * c.prior / rest for c in others}}
        rows = _per_step(volume * max(positive_needed(p, s) or 0.0, s.min_per_bin * len(profile.classes)), w,
                         interval)
    else:
        shares = {c.label: c.prior for c in profile.classes}
        rows = _per_step(volume * s.min_drift_samples, d, interval)  # the missing shares' guard
    features = {}
    for i, f in enumerate(profile.features):
        reference = bin_shares(f.quantile_reference)
        bins: np.ndarray | None = None
        if (i == 0 and not ks_alone) or (far and not ks_alone):  # the PSI branch alone (far: every input's)
            bins = _first(_psi_bins(reference, t) for t in _targets(factor * s.psi_threshold, past, far))
        elif i == len(profile.features) - 1:  # the KS branch alone, where a PSI under its threshold allows
            if past and not far:
                bins = _ks_alone(reference, factor * s.ks_threshold, factor * s.psi_threshold)
            else:
                bins = _first(_ks_bins(reference, t) for t in _targets(factor * s.ks_threshold, past, far))
        moved = reference if bins is None else bins
        features[f.name] = moved * _per_step(count(_feature_drift(f, s, moved, factor)[1], len(QUANTILE_BUCKETS)), d,
                                             interval)
    rate = seconds(s.rate_window)
    requests = _per_step(volume * s.min_samples, rate, interval)
    invalid_share = _past(s.invalid_ratio_threshold, True) if past else _inside(s.invalid_ratio_threshold, True)
    invalid_share = min(invalid_share, (1 + s.invalid_ratio_threshold) / 2)
    error_share = _past(s.error_ratio_threshold, True) if past else _inside(s.error_ratio_threshold, True)
    error_share = min(error_share, (1 + s.error_ratio_threshold) / 2)
    categories = {}
    for i, category in enumerate(profile.categories):
        reference = category_reference(category)
        found = _first(_psi_bins(reference, t) for t in _targets(factor * s.psi_threshold, past, far))
        moved = reference if found is None or (i > 0 and not far) else found
        categories[category.name] = moved * _per_step(
            count(_category_drift(category, s, moved, factor)[1], len(category.values) + 1), d, interval)
    missing = {}
    for nullable in profile.nullable:
        change = _past(s.missing_share_tolerance, True) if past else _inside(s.missing_share_tolerance, True)
        share = nullable.missing_share + change
        if share > 1.0:
            share = nullable.missing_share - change
        missing[nullable.name] = max(share, 0.0) * rows
    return Traffic(
        classes={label: share * rows for label, share in shares.items()},
        features=features,
        categories=categories,
        missing=missing,
        predictions=predictions,
        requests=requests,
        predicted=(1 - invalid_share) * requests,
        invalid=invalid_share * requests,
        errors=error_share * requests,
        slow_bucket=_latency_bucket(s.latency_p99_seconds, past),
    )


def _boundary_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float,
                    by_name: Mapping[str, Alert], url: str) -> list[_Case]:
    end = (steps - 2) * interval
    hold = seconds(s.alert_for)
    out = []
    parts = [("every statistic", False, False), ("class shares past the prediction PSI", True, False)]
    if len(profile.features) == 1:
        parts.append(("the one numeric input's KS alone", False, True))
    for part, prediction_psi, ks_alone in parts:
        for title, past, volume, far in (
                ("just past its threshold, 1.5x the count it needs", True, 1.5, False),
                ("just inside its threshold, 10x its guard", False, 10.0, False),
                # 0.95: a guard window swapped for a longer one must pass it
                ("just past its threshold, 0.95x the count it needs: not yet evidence", True, 0.95, False),
                ("far past its threshold, 1.5x its traffic guard", True, 1.5, True),
                ("far past its threshold, 0.95x its traffic guard: under the guard", True, 0.95, True),
                ("past its threshold, 10x its guard: pending halfway through for", True, 10.0, False)):
            traffic = _boundary_traffic(profile, s, interval, past, volume, prediction_psi, ks_alone, far)
            if traffic is None:
                continue
            case = _Case(f"{part} {title}", s, steps, interval)
            traffic.write(case, profile)
            conditions = _conditions(profile, s, traffic)
            if prediction_psi:
                # Its rows are guarded over the drift window, as the missing share's are.
                conditions = [c for c in conditions if c.alert in (A.PREDICTION_DRIFT, A.FEATURE_MISSING)]
            if ks_alone:
                conditions = [c for c in conditions if c.alert == A.FEATURE_DRIFT]
            if title.endswith("for"):
                # Each alert halfway between becoming active and firing: pending, not firing.
                for c in conditions:
                    start = c.active_from(interval)
                    if start is not None:
                        at = start + math.ceil(hold / 2 / interval) * interval
                        _check_alerts(case, [x for x in conditions if x.alert == c.alert], by_name, at, url)
            _check_alerts(case, conditions, by_name, end, url)
            out.append(case)
    return out


def _quality_boundary_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float,
                            by_name: Mapping[str, Alert], url: str) -> list[_Case]:
    """ModelQualityDrop just past and inside its floor, over and under min_labels, mid-`for`."""
    q = seconds(s.quality_window)
    end = (steps - 2) * interval
    hold = seconds(s.alert_for)
    mix = {c.label: c.prior * 40 for c in profile.classes}
    alert = by_name[A.QUALITY_DROP]
    out = []
    for title, past, volume in (("just under the accuracy floor, 1.5x min_labels", True, 1.5),
                                ("just above the accuracy floor", False, 10.0),
                                ("under the floor on 0.75x min_labels", True, 0.75),
                                ("under the floor, pending halfway through for", True, 10.0)):
        accuracy = _past(s.accuracy_floor, False) if past else _inside(s.accuracy_floor, False)
        labels = _per_step(volume * s.min_labels, q, interval)
        confusion = confusion_with_accuracy(profile, accuracy, scale=labels, skew=True)
        case = _Case(f"labels {title}", s, steps, interval)
        _standard_inputs(case, profile, mix, confusion=[confusion, confusion])
        condition = _Condition(alert.name, {"model": profile.model}, accuracy, accuracy < s.accuracy_floor,
                               2 * labels, q, s.min_labels)
        start = condition.active_from(interval)
        if title.endswith("for") and start is not None:
            _check_alerts(case, [condition], by_name, start + math.ceil(hold / 2 / interval) * interval, url)
        _check_alerts(case, [condition], by_name, end, url)
        out.append(case)
    return out


# -- Traffic that changes: with steady traffic a ratio of rates reads the same over any
# window, so a rule over the wrong window would pass. Here every counter changes pace once,
# a quarter of a rate window before the check, and each recorded series must equal the ratio of the
# increases over its own window (Prometheus 2's range [t - w, t] holds a sample at each end).


def _window_increase(before: float, after: float, change: int, end: int, window: int) -> float:
    """Increase over the last `window` steps up to step `end`, of a counter that grows by
    `before` per step up to step `change`, then by `after`."""

    def value(k: int) -> float:
        return before * min(k, change) + after * max(0, k - change)

    return value(end) - value(max(0, end - window))


def _histogram_quantile(q: float, bounds: Sequence[float], counts: np.ndarray) -> float:
    """Prometheus' histogram_quantile over per-bucket counts (the last bucket is +Inf)."""
    cumulative = np.cumsum(counts)
    rank = float(q * cumulative[-1])
    b = int(np.searchsorted(cumulative, rank, side="left"))
    if b >= len(bounds):
        return float(bounds[-1])
    lower = 0.0 if b == 0 else float(bounds[b - 1])
    below = 0.0 if b == 0 else float(cumulative[b - 1])
    return lower + (float(bounds[b]) - lower) * (rank - below) / (float(cumulative[b]) - below)


def _steps_of(duration: float, interval: float) -> int | None:
    steps = duration / interval
    return round(steps) if abs(steps - round(steps)) < 1e-9 else None


def _as_in_training(profile: ReferenceProfile, like: Traffic, pace: float) -> Traffic:
    """Traffic as in training, at `pace` times the totals of `like`, on the same series."""
    rows = sum(like.classes.values()) * pace
    return Traffic(
        classes=mix_of(profile, rows),
        features={f.name: bin_shares(f.quantile_reference) * like.features[f.name].sum() * pace
                  for f in profile.features},
        requests=like.requests * pace, predicted=like.requests * pace,
        categories={c.name: category_reference(c) * like.category_counts(c, profile).sum() * pace
                    for c in profile.categories},
        missing={f.name: f.missing_share * rows for f in profile.nullable})


# -- An abrupt change: the fast branch (short_window, thresholds times short_factor) must page
# before the long windows are convinced, and only for a hard enough change. What holds at each
# evaluation is computed from the counts in each window by the Python model below.

EVIDENCE_ALERTS = (A.LOW_POSITIVE_RATE, A.FEATURE_DRIFT, A.PREDICTION_DRIFT)


def _drift_holds(psi_value: float, psi_threshold: float, bins: int, reference_count: float, n: float, s: Settings,
                 ks_value: float | None = None, ks_threshold: float = 1.0) -> bool:
    """PSI past its threshold and critical value on `min_per_bin` values per bin, or KS past
    its threshold and critical value (on any count)."""
    if n <= 0:
        return False
    if (n >= s.min_per_bin * bins and psi_value > psi_threshold
            and psi_value > psi_critical(n, reference_count, bins, s.confidence)):
        return True
    return ks_value is not None and ks_value > ks_threshold and ks_value > ks_critical(n, reference_count,
                                                                                        s.confidence)


def _holding(profile: ReferenceProfile, s: Settings, before: Traffic, after: Traffic, change: int, at: int,
             interval: float) -> dict[str, dict[str, tuple[Mapping[str, str], float]]]:
    """Alert -> series -> (labels, value) of the rate and drift alerts whose condition holds at
    step `at`, traffic changing from `before` to `after` at step `change`: the long branch, else
    the fast one (`or` keeps its left side's value)."""
    model = {"model": profile.model}
    z = z_of(s.confidence)
    out: dict[str, dict[str, tuple[Mapping[str, str], float]]] = {name: {} for name in EVIDENCE_ALERTS}
    short = seconds(s.short_window)
    for rate, drift, factor, weigh_ks in ((seconds(s.rate_window), seconds(s.drift_window), 1.0, True),
                                          (short, short, s.short_factor, False)):
        w, d = round(rate / interval), round(drift / interval)

        def counts(a: Iterable[float], b: Iterable[float], window: int) -> np.ndarray:
            return np.array([2 * _window_increase(x, y, change, at, window) for x, y in zip(a, b, strict=True)])

        labels = [c.label for c in profile.classes] if not profile.regression else [""]
        classes_w = counts([before.classes.get(c, 0.0) for c in labels], [after.classes.get(c, 0.0) for c in labels],
                           w)
        positive = profile.positive
        if positive is not None and low_rate_alerted(profile, s) and classes_w.sum() > 0:
            rows = float(classes_w.sum())
            share = float(classes_w[labels.index(positive.label)]) / rows
            if share < s.positive_rate_floor and wilson_upper(share, rows, z) < s.positive_rate_floor:
                out[A.LOW_POSITIVE_RATE].setdefault("", (model, share))
        if profile.regression:
            bins = counts(before.prediction_bins(profile), after.prediction_bins(profile), d)
            assert profile.prediction is not None
            reference = profile.prediction.quantile_reference
            live = np.cumsum(bins) / bins.sum()
            value = psi(bin_shares(live), bin_shares(reference))
            if _drift_holds(value, factor * s.prediction_psi_threshold, len(QUANTILE_BUCKETS), profile.rows,
                            float(bins.sum()), s, ks_distance(live, reference) if weigh_ks else None,
                            factor * s.ks_threshold):
                out[A.PREDICTION_DRIFT].setdefault("", (model, value))
        else:
            classes_d = counts([before.classes.get(c, 0.0) for c in labels],
                               [after.classes.get(c, 0.0) for c in labels], d)
            value = psi(classes_d / classes_d.sum(), [c.prior for c in profile.classes])
            if _drift_holds(value, factor * s.prediction_psi_threshold, len(labels), profile.rows,
                            float(classes_d.sum()), s):
                out[A.PREDICTION_DRIFT].setdefault("", (model, value))
        for f in profile.features:
            bins = counts(before.features[f.name], after.features[f.name], d)
            live = np.cumsum(bins) / bins.sum()
            value = psi(bin_shares(live), bin_shares(f.quantile_reference))
            if _drift_holds(value, factor * s.psi_threshold, len(QUANTILE_BUCKETS), f.count, float(bins.sum()), s,
                            ks_distance(live, f.quantile_reference) if weigh_ks else None, factor * s.ks_threshold):
                out[A.FEATURE_DRIFT].setdefault(f.name, ({**model, "feature": f.name}, value))
        for category in profile.categories:
            values = counts(before.category_counts(category, profile), after.category_counts(category, profile), d)
            value = psi(values / values.sum(), category_reference(category))
            if _drift_holds(value, factor * s.psi_threshold, len(category.values) + 1, category.count,
                            float(values.sum()), s):
                out[A.FEATURE_DRIFT].setdefault(category.name, ({**model, "feature": category.name}, value))
    return out


def _firing(holding: Mapping[int, Mapping[str, Mapping[str, tuple[Mapping[str, str], float]]]], alert: str, k: int,
            hold: int) -> list[tuple[Mapping[str, str], float]]:
    """The series of `alert` firing at step k: holding at every evaluation of its `for`."""
    return [holding[k][alert][key] for key in holding[k][alert]
            if all(key in holding[j][alert] for j in range(k - hold, k + 1))]


def _abrupt_cases(profile: ReferenceProfile, s: Settings, interval: float, by_name: Mapping[str, Alert],
                  url: str) -> list[_Case]:
    """Traffic as in training, then at once past (or inside) the fast branch's thresholds: each
    rate and drift alert checked at every evaluation where the model says its firing changes,
    the one before, and at the end."""
    d, short, hold = (_steps_of(seconds(x), interval) for x in (s.drift_window, s.short_window, s.alert_for))
    if d is None or short is None or hold is None or short < 2:
        return []
    change = d + 2  # every window full of normal traffic
    last = change + short + hold + 3
    out = []
    for part, prediction_psi in (("every statistic", False), ("class shares", True)):
        for title, past, volume, far in (
                ("past the fast branch's thresholds, 1.5x the count it needs", True, 1.5, False),
                ("inside the fast branch's thresholds, 10x its guard", False, 10.0, False),
                ("past the fast branch's thresholds, 0.95x the count it needs", True, 0.95, False),
                ("far past the fast branch's thresholds, 1.5x its guard", True, 1.5, True),
                ("far past the fast branch's thresholds, 0.95x its guard", True, 0.95, True)):
            after = _boundary_traffic(profile, s, interval, past, volume, prediction_psi, far=far,
                                      factor=s.short_factor, window=seconds(s.short_window))
            if after is None:
                continue
            before = _as_in_training(profile, after, 1.0)
            name = f"abrupt change, {part} {title}"
            case, later = _Case(name, s, last + 2, interval), _Case(name, s, last + 2, interval)
            before.write(case, profile)
            after.write(later, profile)
            case.changing_to(later, change)
            holding = {k: _holding(profile, s, before, after, change, k, interval)
                       for k in range(change - hold, last + 1)}

            for alert in (a for a in EVIDENCE_ALERTS if a in by_name):
                firing = {k: _firing(holding, alert, k, hold) for k in range(change, last + 1)}
                checks = {last}
                for k in range(change + 1, last + 1):
                    if firing[k] != firing[k - 1]:
                        checks |= {k - 1, k}
                for k in sorted(checks):
                    case.alert(by_name[alert], k * interval, firing[k], url)
            out.append(case)
    return out


def _change_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float) -> list[_Case]:
    n = Names.of(s)
    end = steps - 2
    w, d = _steps_of(seconds(s.rate_window), interval), _steps_of(seconds(s.drift_window), interval)
    after = _boundary_traffic(profile, s, interval, past=True, volume=10.0)
    if w is None or d is None or after is None or w < 2:
        return []
    # Before: as in training, at half the pace (so totals change too, not only shares).
    before = _as_in_training(profile, after, 0.5)
    change = end - max(1, w // 4)  # 40 % of the window is "after": no quantile sits on a bucket edge
    name = "every counter changes pace a quarter of a rate window before the check: each ratio over its own window"
    case, later = _Case(name, s, steps, interval), _Case(name, s, steps, interval)
    before.write(case, profile)
    after.write(later, profile)
    case.changing_to(later, change)
    at = end * interval
    model = {"model": profile.model}

    def inc(a: float, b: float, window: int) -> float:
        return 2 * _window_increase(a, b, change, end, window)  # both replicas

    classes = {label: (before.classes[label], after.classes[label]) for label in before.classes}
    over_w = {label: inc(a, b, w) for label, (a, b) in classes.items()}
    over_d = {label: inc(a, b, d) for label, (a, b) in classes.items()}
    rate_s = seconds(s.rate_window)
    case.expect(n.model_rate, at, model, sum(over_w.values()) / rate_s)
    case.expect(n.model_increase, at, model, sum(over_w.values()))
    case.expect(n.model_increase_drift, at, model, sum(over_d.values()))
    if profile.regression:
        assert profile.prediction is not None
        reference = profile.prediction.quantile_reference
        bins = np.array([inc(a, b, d) for a, b in zip(before.prediction_bins(profile), after.prediction_bins(profile),
                                                          strict=True)])
        live = np.cumsum(bins) / bins.sum()
        for bound, value in zip(QUANTILE_BUCKETS, live, strict=True):
            case.expect(n.prediction_cdf, at, {**model, "le": bound_label(bound)}, float(value))
        case.expect(n.prediction_ks, at, model, ks_distance(live, reference))
        case.expect(n.prediction_psi, at, model, psi(bin_shares(live), bin_shares(reference)))
    else:
        for label in over_w:
            case.expect(n.class_ratio, at, {**model, "class": label}, over_w[label] / sum(over_w.values()))
            case.expect(n.class_rate, at, {**model, "class": label}, over_w[label] / rate_s)
            if d != w:
                case.expect(n.class_ratio_drift, at, {**model, "class": label}, over_d[label] / sum(over_d.values()))
        shares = [over_d[c.label] / sum(over_d.values()) for c in profile.classes]
        case.expect(n.prediction_psi, at, model, psi(shares, [c.prior for c in profile.classes]))
    for category in profile.categories:
        counts = np.array([inc(a, b, d) for a, b in zip(before.category_counts(category, profile),
                                                        after.category_counts(category, profile), strict=True)])
        _expect_categories(case, n, at, profile, category, counts)
    for nullable in profile.nullable:
        missing = inc(before.missing_rows(nullable), after.missing_rows(nullable), d)
        case.expect(n.missing_share, at, {**model, "feature": nullable.name}, missing / sum(over_d.values()))
    requests = inc(before.requests, after.requests, w)
    case.expect(n.request_rate, at, {"job": JOB}, requests / rate_s)
    case.expect(n.error_ratio, at, {"job": JOB}, inc(before.errors, after.errors, w) / requests)
    invalid = inc(before.invalid, after.invalid, w)
    case.expect(n.invalid_ratio, at, model, invalid / (invalid + inc(before.predicted, after.predicted, w)))
    buckets = np.zeros(len(LATENCY_BUCKETS) + 1)
    buckets[before.slow_bucket] += inc(before.requests, 0.0, w)
    buckets[after.slow_bucket] += inc(0.0, after.requests, w)
    for q in LATENCY_QUANTILES:
        case.expect(n.latency(q), at, {"job": JOB}, _histogram_quantile(q / 100, LATENCY_BUCKETS, buckets))
    for f in profile.features:
        bins = np.array([inc(a, b, d) for a, b in zip(before.features[f.name], after.features[f.name], strict=True)])
        live = np.cumsum(bins) / bins.sum()
        flabels = {**model, "feature": f.name}
        for bound, value in zip(QUANTILE_BUCKETS, live, strict=True):
            case.expect(n.live_cdf, at, {**flabels, "le": bound_label(bound)}, float(value))
        case.expect(n.ks, at, flabels, ks_distance(live, f.quantile_reference))
        case.expect(n.psi, at, flabels, psi(bin_shares(live), bin_shares(f.quantile_reference)))
        case.expect(n.feature_increase, at, flabels, float(bins.sum()))
    _expect_evidence(case, profile, s, at, before, after, change, end, interval)
    return [case]


def _expect_evidence(case: _Case, profile: ReferenceProfile, s: Settings, at: float, before: Traffic,
                     after: Traffic, change: int, end: int, interval: float) -> None:
    """The fast branch's rates and drift over `short_window`, and the evidence series of both
    branches (the positive share's upper bound, the critical values), at step `end` of
    traffic changing from `before` to `after` at step `change`."""
    model = {"model": profile.model}
    z = z_of(s.confidence)
    short = Names.short_of(s)
    sh = round(seconds(s.short_window) / interval)
    labels = [""] if profile.regression else [c.label for c in profile.classes]

    def inc(a: Iterable[float], b: Iterable[float], window: int) -> np.ndarray:
        return np.array([2 * _window_increase(x, y, change, end, window) for x, y in zip(a, b, strict=True)])

    for x, window in ((Names.of(s), seconds(s.rate_window)), (short, seconds(s.short_window))):
        w = round(window / interval)
        d = sh if x is short else round(seconds(s.drift_window) / interval)
        rows_w = inc([before.classes.get(c, 0.0) for c in labels], [after.classes.get(c, 0.0) for c in labels], w)
        rows_d = inc([before.classes.get(c, 0.0) for c in labels], [after.classes.get(c, 0.0) for c in labels], d)
        total_w, total_d = float(rows_w.sum()), float(rows_d.sum())
        if x is short:
            case.expect(x.model_rate, at, model, total_w / window)
            case.expect(x.model_increase, at, model, total_w)
            if not profile.regression:
                for label, count in zip(labels, rows_w, strict=True):
                    case.expect(x.class_ratio, at, {**model, "class": label}, float(count) / total_w)
                case.expect(x.prediction_psi, at, model, psi(rows_d / total_d, [c.prior for c in profile.classes]))
        positive = profile.positive
        if positive is not None:
            share = float(rows_w[labels.index(positive.label)]) / total_w
            if x is short:
                case.expect(x.positive_ratio, at, model, share)
            if low_rate_alerted(profile, s):
                case.expect(x.positive_upper, at, model, wilson_upper(share, total_w, z))
        outcomes = len(QUANTILE_BUCKETS) if profile.regression else len(profile.classes)
        if total_d >= s.min_per_bin * outcomes:  # the PSI critical value exists past its guard only
            case.expect(x.prediction_psi_critical, at, model, psi_critical(total_d, profile.rows, outcomes,
                                                                           s.confidence))
        if profile.regression:
            assert profile.prediction is not None
            reference = profile.prediction.quantile_reference
            bins = inc(before.prediction_bins(profile), after.prediction_bins(profile), d)
            live = np.cumsum(bins) / bins.sum()
            if x is short:  # the fast branch weighs PSI alone
                case.expect(x.prediction_psi, at, model, psi(bin_shares(live), bin_shares(reference)))
            else:
                case.expect(x.prediction_ks_critical, at, model, ks_critical(float(bins.sum()), profile.rows,
                                                                             s.confidence))
        for f in profile.features:
            flabels = {**model, "feature": f.name}
            bins = inc(before.features[f.name], after.features[f.name], d)
            count = float(bins.sum())
            if count >= s.min_per_bin * len(QUANTILE_BUCKETS):
                case.expect(x.psi_critical, at, flabels, psi_critical(count, f.count, len(QUANTILE_BUCKETS),
                                                                      s.confidence))
            if x is short:
                live = np.cumsum(bins) / count
                case.expect(x.psi, at, flabels, psi(bin_shares(live), bin_shares(f.quantile_reference)))
                case.expect(x.feature_increase, at, flabels, count)
            else:
                case.expect(x.ks_critical, at, flabels, ks_critical(count, f.count, s.confidence))
        for category in profile.categories:
            counts = inc(before.category_counts(category, profile), after.category_counts(category, profile), d)
            if counts.sum() >= s.min_per_bin * (len(category.values) + 1):
                case.expect(x.psi_critical, at, {**model, "feature": category.name},
                            psi_critical(float(counts.sum()), category.count, len(category.values) + 1,
                                         s.confidence))
            if x is short:
                _expect_categories(case, x, at, profile, category, counts)


def _expect_categories(case: _Case, n: Names, at: float, profile: ReferenceProfile, category: CategoryProfile,
                       counts: np.ndarray) -> None:
    """Live shares, PSI, distance and count of a categorical input whose drift window holds `counts`."""
    labels = {"model": profile.model, "feature": category.name}
    live = counts / counts.sum()
    reference = category_reference(category)
    for label, share in zip(_category_labels(category), live, strict=True):
        case.expect(n.category_share, at, {**labels, "category": label}, float(share))
    case.expect(n.psi, at, labels, psi(live, reference))
    case.expect(n.category_distance, at, labels, total_variation(live, reference))
    case.expect(n.feature_increase, at, labels, float(counts.sum()))


def _quality_change_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float) -> list[_Case]:
    """Labels (and their share of the traffic) change pace half a quality window before the check."""
    n = Names.of(s)
    end = steps - 2
    q = _steps_of(seconds(s.quality_window), interval)
    if q is None or q < 2:
        return []
    change = end - q // 2
    mix = {c.label: c.prior * 40 for c in profile.classes}
    more = {label: 2 * rows for label, rows in mix.items()}  # predictions double their pace too
    good = confusion_with_accuracy(profile, (1 + s.accuracy_floor) / 2, scale=4.0)
    bad = confusion_with_accuracy(profile, s.accuracy_floor / 2, scale=12.0, skew=True)
    name = "labels change in number and agreement half a quality window before the check"
    case, later = _Case(name, s, steps, interval), _Case(name, s, steps, interval)
    # The probabilities' estimate changes too, from right to far too hopeful.
    estimated_good = confusion_with_accuracy(profile, (1 + s.accuracy_floor) / 2, scale=sum(mix.values()))
    estimated_bad = confusion_with_accuracy(profile, 0.75 * s.accuracy_floor, scale=sum(more.values()), skew=True)
    estimates = profile.probabilities
    _standard_inputs(case, profile, mix, confusion=[good, good], expected=[estimated_good] * 2 if estimates else None)
    _standard_inputs(later, profile, more, confusion=[bad, bad], expected=[estimated_bad] * 2 if estimates else None)
    case.changing_to(later, change)
    at = end * interval
    window = seconds(s.quality_window)
    summed = {cell: 2 * _window_increase(good[cell], bad[cell], change, end, q) for cell in good}
    model = {"model": profile.model}
    positive = profile.positive
    realized = quality_of(summed, positive.label if positive else None)
    for metric, expected in realized.items():
        case.expect(getattr(n, metric), at, model, expected)
    if estimates:
        _expect_estimated(case, n, at, profile, {cell: 2 * _window_increase(estimated_good[cell], estimated_bad[cell],
                                                                            change, end, q)
                                                 for cell in estimated_good}, window)
        case.expect(n.accuracy_upper, at, model, wilson_upper(realized["accuracy"], sum(summed.values()),
                                                             z_of(s.confidence)))
    for (actual, predicted), count in summed.items():
        case.expect(n.confusion_rate, at, {**model, "actual": actual, "predicted": predicted}, count / window)
    predictions = 2 * _window_increase(sum(mix.values()), sum(more.values()), change, end, q)
    case.expect(n.label_coverage, at, model, sum(summed.values()) / predictions)
    case.expect(n.labels_increase, at, model, sum(summed.values()))
    return [case]


def _quiet(case: _Case, at: float, names: Sequence[str], by_name: Mapping[str, Alert], url: str) -> None:
    """Each of the named alerts that the model has stays quiet at `at`."""
    for name in names:
        if name in by_name:
            case.alert(by_name[name], at, [], url)


def _classification_quality_cases(profile: ReferenceProfile, s: Settings, q_steps: int, q_interval: float,
                                  q_end: float, by_name: Mapping[str, Alert], url: str) -> list[_Case]:
    """Accuracy, precision, recall and F1 from the confusion counters, and ModelQualityDrop."""
    n = Names.of(s)
    hold = seconds(s.alert_for)
    labels = {"model": profile.model}
    positive = profile.positive
    mix = mix_of(profile, 40.0)
    total = sum(mix.values())
    # Labels as good as the model was in training: quality at its computed values, quiet.
    quality_cases: list[_Case] = []
    healthy = _Case("labels mostly agree with predictions: quality at its computed values, nothing fires", s,
                    q_steps, q_interval)
    window = seconds(s.quality_window)
    # Probabilities as right as the labels: the estimate agrees with them.
    estimate = [confusion_with_accuracy(profile, (1 + s.accuracy_floor) / 2, scale=total)] * len(INSTANCES) \
        if profile.probabilities else None
    _standard_inputs(healthy, profile, mix, expected=estimate)
    confusion = healthy_confusion(profile, s)
    for metric, expected in quality_of(confusion, positive.label if positive else None).items():
        healthy.expect(getattr(n, metric), q_end, labels, expected)
    if estimate is not None:
        _expect_estimated(healthy, n, q_end, profile, {k: v * window / q_interval for k, v in _summed(estimate).items()},
                          window)
    healthy.expect(n.label_coverage, q_end, labels, sum(confusion.values()) / total)
    _quiet(healthy, q_end, [name for name in by_name if name != A.SERVER_DOWN], by_name, url)
    quality_cases.append(healthy)

    # Concept drift: the same inputs and predictions, but the model is now often wrong. The
    # replicas see different labels; the statistics are those of their summed matrix.
    # Half the floor in all: one replica a little better, the other a little worse.
    wrong_a = confusion_with_accuracy(profile, 0.4 * s.accuracy_floor, scale=10.0)
    wrong_b = confusion_with_accuracy(profile, 0.6 * s.accuracy_floor, scale=10.0, skew=True)
    summed = _summed([wrong_a, wrong_b])
    expected_quality = quality_of(summed, positive.label if positive else None)
    wrong = _Case("labels disagree with predictions: accuracy, precision, recall, F1 of the summed replicas", s, q_steps, q_interval)
    _standard_inputs(wrong, profile, mix, confusion=[wrong_a, wrong_b], expected=estimate)
    for metric, expected in expected_quality.items():
        wrong.expect(getattr(n, metric), q_end, labels, expected)
    labels_in_window = sum(summed.values()) * seconds(s.quality_window) / q_interval
    if estimate is not None:  # the probabilities did not see it coming: concept drift
        estimated = (1 + s.accuracy_floor) / 2
        _check_alerts(wrong, [_Condition(A.CONCEPT_DRIFT, labels, estimated - expected_quality["accuracy"], True,
                                         sum(summed.values()), window, 1.0,
                                         concept_needed(expected_quality["accuracy"], estimated, s))],
                      by_name, q_end, url)
    wrong.expect(n.labels_increase, q_end, labels, labels_in_window)
    for cell, per_step in summed.items():
        wrong.expect(n.confusion_rate, q_end, {**labels, "actual": cell[0], "predicted": cell[1]}, per_step / q_interval)
    wrong.alert(by_name[A.QUALITY_DROP], hold / 2, [], url)
    wrong.alert(by_name[A.QUALITY_DROP], q_end, [(labels, expected_quality["accuracy"])], url)
    _quiet(wrong, q_end, [A.FEATURE_DRIFT, A.PREDICTION_DRIFT, A.LOW_POSITIVE_RATE], by_name, url)
    quality_cases.append(wrong)

    # The same disagreement on too few labels: the accuracy is noise, nothing fires.
    few = _Case("low accuracy on fewer labels than min_labels does not fire", s, q_steps, q_interval)
    scale = 0.5 * s.min_labels / labels_in_window
    _standard_inputs(few, profile, mix, confusion=[{k: v * scale for k, v in wrong_a.items()},
                                                   {k: v * scale for k, v in wrong_b.items()}])
    few.expect(n.accuracy, q_end, labels, expected_quality["accuracy"])
    few.alert(by_name[A.QUALITY_DROP], q_end, [], url)
    quality_cases.append(few)

    return quality_cases


def _expect_estimated(case: _Case, n: Names, at: float, profile: ReferenceProfile, summed: Confusion,
                      window: float) -> dict[str, float]:
    """The estimated quality of `summed` (the replicas' expected confusion counted over the
    quality window, `window` seconds): each cell's rate, the count, the four ratios, the
    accuracy's upper bound. Returns the ratios."""
    labels = {"model": profile.model}
    quality = quality_of(summed, profile.positive.label if profile.positive else None)
    for metric, value in quality.items():
        case.expect(getattr(n, f"estimated_{metric}"), at, labels, value)
    for (actual, predicted), count in summed.items():
        case.expect(n.expected_confusion_rate, at, {**labels, "actual": actual, "predicted": predicted}, count / window)
    count = sum(summed.values())
    case.expect(n.expected_increase, at, labels, count)
    case.expect(n.estimated_accuracy_upper, at, labels, wilson_upper(quality["accuracy"], count, z_of(case.settings.confidence)))
    return quality


def _label_inputs(case: _Case, profile: ReferenceProfile, class_per_step: Mapping[str, float],
                  confusion: Sequence[Confusion], expected: Sequence[Confusion]) -> None:
    """Only what the quality rules read: predictions, labels and expected confusion (promtool
    evaluates every rule at every step; without inputs the others cost nothing)."""
    _feedback_inputs(case, profile, confusion)
    _expected_inputs(case, profile, expected)
    for label, per_step in class_per_step.items():
        case.counter(N.PREDICTIONS.total, per_step, model=profile.model, **{"class": label})


def _estimated_quality_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float, end: float,
                             by_name: Mapping[str, Alert], url: str) -> list[_Case]:
    """Quality estimated from calibrated probabilities (modelmon.stats.calibration): the ratios of
    the summed replicas' expected confusion, ModelEstimatedQualityDrop on and around the
    count its Wilson bound needs, with no label; ModelConceptDrift when labels fall under the
    estimate by more than the margin, on and around the labels its bound needs. Each alert is
    checked halfway through its `for` too."""
    n = Names.of(s)
    window = seconds(s.quality_window)
    hold = seconds(s.alert_for)
    labels = {"model": profile.model}
    mix = mix_of(profile, 40.0)
    rows = sum(mix.values())
    z = z_of(s.confidence)
    no_labels: list[Confusion] = [{}, {}]
    out: list[_Case] = []

    def check(case: _Case, condition: _Condition) -> None:
        start = condition.active_from(interval)
        if start is not None:
            _check_alerts(case, [condition], by_name, start + math.ceil(hold / 2 / interval) * interval, url)
        _check_alerts(case, [condition], by_name, end, url)

    # Under the floor, on plenty of rows (the replicas differ; their sum decides).
    a = confusion_with_accuracy(profile, 0.5 * s.accuracy_floor, scale=rows)
    b = confusion_with_accuracy(profile, 0.7 * s.accuracy_floor, scale=rows, skew=True)
    case = _Case("calibrated probabilities put accuracy under the floor: the estimated quality of the summed "
                 "replicas, ModelEstimatedQualityDrop with no label", s, steps, interval)
    _label_inputs(case, profile, mix, no_labels, [a, b])
    per_step = {cell: value for cell, value in _summed([a, b]).items()}
    quality = _expect_estimated(case, n, end, profile, {k: v * window / interval for k, v in per_step.items()}, window)
    check(case, _Condition(A.ESTIMATED_QUALITY_DROP, labels, quality["accuracy"], True, sum(per_step.values()),
                           window, 1.0, estimated_needed(quality["accuracy"], s)))
    _quiet(case, end, [A.CONCEPT_DRIFT, A.QUALITY_DROP], by_name, url)  # no labels, no verdict from them
    out.append(case)

    # Just past and short of the rows that make it evidence, and just above the floor.
    for title, accuracy, volume in (("under the floor on 1.25x the rows its bound needs", 0.9, 1.25),
                                    ("under the floor on 0.8x the rows its bound needs", 0.9, 0.8),
                                    ("just above the floor", None, 10.0)):
        value = 0.9 * s.accuracy_floor if accuracy else _inside(s.accuracy_floor, False)
        need = estimated_needed(value, s)
        count = volume * (need if need is not None else s.min_labels)
        step_rows = _per_step(count, window, interval)
        matrix = confusion_with_accuracy(profile, value, scale=step_rows, skew=True)
        case = _Case(f"estimated accuracy {title}", s, steps, interval)
        _label_inputs(case, profile, mix, no_labels, [matrix, matrix])
        case.expect(n.estimated_accuracy, end, labels, value)
        case.expect(n.estimated_accuracy_upper, end, labels, wilson_upper(value, count, z))
        check(case, _Condition(A.ESTIMATED_QUALITY_DROP, labels, value, True, 2 * step_rows, window, 1.0, need))
        out.append(case)

    # Labels under a healthy estimate: by twice the margin (on and around the labels that make
    # it evidence), by half of it.
    estimate = (1 + s.accuracy_floor) / 2
    expected = confusion_with_accuracy(profile, estimate, scale=rows)
    for title, accuracy, volume in (("labels under the estimate by twice the margin, 1.25x the labels its bound needs",
                                     max(0.0, estimate - 2 * s.concept_drift_margin), 1.25),
                                    ("labels under the estimate by twice the margin, 0.8x the labels its bound needs",
                                     max(0.0, estimate - 2 * s.concept_drift_margin), 0.8),
                                    ("labels under the estimate by half the margin",
                                     estimate - 0.5 * s.concept_drift_margin, 10.0)):
        need = concept_needed(accuracy, estimate, s)
        count = volume * (need if need is not None else s.min_labels)
        step_labels = _per_step(count, window, interval)
        confusion = confusion_with_accuracy(profile, accuracy, scale=step_labels, skew=True)
        case = _Case(title, s, steps, interval)
        _label_inputs(case, profile, mix, [confusion, confusion], [expected, expected])
        case.expect(n.accuracy, end, labels, accuracy)
        case.expect(n.accuracy_upper, end, labels, wilson_upper(accuracy, count, z))
        case.expect(n.estimated_accuracy, end, labels, estimate)
        check(case, _Condition(A.CONCEPT_DRIFT, labels, estimate - accuracy, True, 2 * step_labels, window, 1.0,
                               need))
        _quiet(case, end, [A.ESTIMATED_QUALITY_DROP], by_name, url)
        out.append(case)
    return out


def _regression_quality_cases(profile: ReferenceProfile, s: Settings, q_steps: int, q_interval: float,
                              q_end: float, by_name: Mapping[str, Alert], url: str) -> list[_Case]:
    """MAE, RMSE and bias from a regressor's error sums, and its MAE-based ModelQualityDrop."""
    n = Names.of(s)
    hold = seconds(s.alert_for)
    labels = {"model": profile.model}
    mix = mix_of(profile, 40.0)
    total = sum(mix.values())
    out = []
    healthy = _Case("labels as close as in training: MAE, RMSE, bias at their computed values, nothing fires", s,
                    q_steps, q_interval)
    errors = [healthy_errors(profile)] * len(INSTANCES)
    _standard_inputs(healthy, profile, mix, errors=errors)
    for metric, expected in errors_of(errors).items():
        healthy.expect(getattr(n, metric), q_end, labels, expected)
    healthy.expect(n.label_coverage, q_end, labels, errors[0].count / total)
    _quiet(healthy, q_end, [name for name in by_name if name != A.SERVER_DOWN], by_name, url)
    out.append(healthy)
    if A.QUALITY_DROP not in by_name or profile.errors is None:
        return out  # no training MAE (no target when profiled): no alert to test
    alert = by_name[A.QUALITY_DROP]
    ceiling = s.mae_ratio * profile.errors.mae
    # The truth moved: one replica's labels a little past the ceiling, the other's far past;
    # the statistics are those of both together, one over- and one under-estimating.
    wrong = [Errors(10.0, 1.2 * ceiling, 1.4 * ceiling, 0.5 * ceiling), Errors(6.0, 2.5 * ceiling, 3.0 * ceiling,
                                                                                -ceiling)]
    far = errors_of(wrong)
    case = _Case("labels far from the predictions: MAE, RMSE, bias of the summed replicas", s, q_steps, q_interval)
    _standard_inputs(case, profile, mix, errors=wrong)
    for metric, value in far.items():
        case.expect(getattr(n, metric), q_end, labels, value)
    labels_in_window = sum(e.count for e in wrong) * seconds(s.quality_window) / q_interval
    case.expect(n.labels_increase, q_end, labels, labels_in_window)
    case.alert(alert, hold / 2, [], url)
    case.alert(alert, q_end, [(labels, far["mae"])], url)
    _quiet(case, q_end, [A.FEATURE_DRIFT, A.PREDICTION_DRIFT], by_name, url)
    out.append(case)
    # Boundary: the MAE just past and inside its ceiling, over and under min_labels, mid-`for`.
    q = seconds(s.quality_window)
    end = (q_steps - 2) * q_interval
    for title, past, volume in (("MAE just over the ceiling, 1.5x min_labels", True, 1.5),
                                ("MAE just under the ceiling", False, 10.0),
                                ("MAE over the ceiling on 0.75x min_labels", True, 0.75),
                                ("MAE over the ceiling, pending halfway through for", True, 10.0)):
        mae = _past(ceiling, True) if past else _inside(ceiling, True, 1e18)
        count = _per_step(volume * s.min_labels, q, q_interval)
        boundary = _Case(f"labels {title}", s, q_steps, q_interval)
        _standard_inputs(boundary, profile, mix, errors=[Errors(count, mae, 1.2 * mae, 0.0)] * len(INSTANCES))
        condition = _Condition(alert.name, labels, mae, mae > ceiling, 2 * count, q, s.min_labels)
        start = condition.active_from(q_interval)
        if title.endswith("for") and start is not None:
            _check_alerts(boundary, [condition], by_name, start + math.ceil(hold / 2 / q_interval) * q_interval, url)
        _check_alerts(boundary, [condition], by_name, end, url)
        out.append(boundary)
    # Change: labels change in number and error half a quality window before the check.
    steps = _steps_of(q, q_interval)
    if steps is None or steps < 2:
        return out
    last = q_steps - 2
    change = last - steps // 2
    good, bad = Errors(4.0, profile.errors.mae, 1.3 * profile.errors.mae, 0.2 * profile.errors.mae), \
        Errors(12.0, 2 * ceiling, 2.5 * ceiling, -0.5 * ceiling)
    more = mix_of(profile, 80.0)
    name = "labels change in number and error half a quality window before the check"
    case, later = _Case(name, s, q_steps, q_interval), _Case(name, s, q_steps, q_interval)
    _standard_inputs(case, profile, mix, errors=[good, good])
    _standard_inputs(later, profile, more, errors=[bad, bad])
    case.changing_to(later, change)
    at = last * q_interval

    def inc(a: float, b: float) -> float:
        return 2 * _window_increase(a, b, change, last, steps)

    count = inc(good.count, bad.count)
    case.expect(n.mae, at, labels, inc(good.count * good.mae, bad.count * bad.mae) / count)
    case.expect(n.rmse, at, labels, math.sqrt(inc(good.count * good.rmse**2, bad.count * bad.rmse**2) / count))
    case.expect(n.bias, at, labels, (inc(good.over, bad.over) - inc(good.under, bad.under)) / count)
    case.expect(n.labels_increase, at, labels, count)
    case.expect(n.label_coverage, at, labels, count / inc(sum(mix.values()), sum(more.values())))
    out.append(case)
    return out


def _step(scrape: float, finest: float, spans: Sequence[float]) -> float:
    """The coarsest whole number of seconds up to `finest` that divides every span (so
    windows and `for` are whole steps), never finer than the scrape interval."""
    for step in range(int(finest), 0, -1):
        if step >= scrape and all(_steps_of(span, step) is not None for span in spans):
            return float(step)
    return max(scrape, float(int(finest)))


def rule_tests(profile: ReferenceProfile, settings: Settings, rule_files: Sequence[str]) -> dict[str, str]:
    """promtool test files (name -> YAML) for the rules that `rules.rule_files` renders.

    The ground-truth cases have a file of their own, evaluated at most twice a minute: their
    window is an hour in production, and 5-second evaluations of it would take minutes. The
    cases where traffic changes (abruptly, or in pace) have another.
    """
    s = settings
    n = Names.of(s)
    window = max(seconds(s.rate_window), seconds(s.drift_window))
    hold = seconds(s.alert_for)
    # promtool evaluates every rule at every step of every case. Linear counters give the same
    # exact rates sampled every 15 s as every 5 s, so the cases step at a tenth of the
    # shortest long window, a quarter of the short one and of each `for` (so "halfway
    # through" is a few steps from either end), dividing each, never finer than the scrape
    # interval. (ModelServerDown's case checks between steps: an alert is checked as of the
    # last evaluation at or before its time.)
    finest = min(seconds(s.rate_window), seconds(s.drift_window)) / 10, seconds(s.short_window) / 4, hold / 4
    interval = _step(seconds(s.scrape_interval), min(finest),
                     [seconds(x) for x in (s.rate_window, s.drift_window, s.short_window, s.alert_for)])
    settle = window + 3 * interval  # windows full, start-of-series effects gone
    end = settle + hold + 3 * interval  # and every `for` elapsed
    steps = int(end / interval) + 2
    # Cases that read the (long) quality window sample every minute at most: the same exact
    # rates of linear counters, without evaluating an hour of 5-second samples per rule.
    q_interval = max(interval, _step(seconds(s.scrape_interval), min(seconds(s.quality_window) / 60, hold / 2),
                                     [seconds(s.quality_window), hold]))
    q_end = max(window, seconds(s.quality_window)) + 3 * q_interval + hold + 3 * q_interval
    q_steps = int(q_end / q_interval) + 2
    url = f"{s.grafana_url}/d/{dashboard_uid(profile)}"
    by_name = {a.name: a for a in alerts(profile, s)}
    model = profile.model
    labels = {"model": model}
    positive = profile.positive
    cases: list[_Case] = []
    prior = {c.label: c.prior for c in profile.classes}

    # Traffic as in training: ratios and drift statistics at their reference values, no alert.
    normal = _Case("normal traffic: statistics at their reference values, nothing fires", s, steps, interval)
    mix = mix_of(profile, 40.0)  # shares exactly as in training
    _standard_inputs(normal, profile, mix)
    total = sum(mix.values())
    if profile.regression:
        assert profile.prediction is not None
        reference = profile.prediction.quantile_reference
        live_cdf = np.cumsum(bin_shares(reference))
        normal.expect(n.prediction_psi, end, labels, psi(bin_shares(live_cdf), bin_shares(reference)))
        normal.expect(n.prediction_ks, end, labels, ks_distance(live_cdf, reference))
    else:
        for label, per_step in mix.items():
            normal.expect(n.class_ratio, end, {**labels, "class": label}, per_step / total)
            normal.expect(n.class_rate, end, {**labels, "class": label}, 2 * per_step / interval)
        live = np.array([mix[c.label] / total for c in profile.classes])
        normal.expect(n.prediction_psi, end, labels, psi(live, [c.prior for c in profile.classes]))
        if positive is not None:  # recorded for the dashboard also where no alert reads it
            normal.expect(n.positive_ratio, end, labels, mix[positive.label] / total)
    normal.expect(n.model_rate, end, labels, 2 * total / interval)
    normal.expect(n.request_rate, end, {"job": JOB}, 2 * total / interval)
    normal.expect(n.error_ratio, end, {"job": JOB}, 0.0)
    normal.expect(n.invalid_ratio, end, labels, 0.0)
    for f in profile.features:
        flabels = {**labels, "feature": f.name}
        normal.expect(n.psi, end, flabels, 0.0)
        normal.expect(n.ks, end, flabels, ks_distance(np.cumsum(reference_counts(f.quantile_reference, f.count))
                                                      / f.count, f.quantile_reference))
        for bound, share in zip(QUANTILE_BUCKETS, bin_shares(f.quantile_reference)):
            normal.expect(n.reference_share, end, {**flabels, "le": bound_label(bound)}, share)
    in_drift_window = 2 * seconds(s.drift_window) / interval
    for category in profile.categories:
        _expect_categories(normal, n, end, profile, category,
                           category_reference(category) * profile.rows * in_drift_window)
    for nullable in profile.nullable:
        normal.expect(n.missing_share, end, {**labels, "feature": nullable.name}, nullable.missing_share)
    _quiet(normal, end, list(by_name), by_name, url)
    cases.append(normal)

    if profile.regression:
        quality_cases = _regression_quality_cases(profile, s, q_steps, q_interval, q_end, by_name, url)
    else:
        quality_cases = _classification_quality_cases(profile, s, q_steps, q_interval, q_end, by_name, url)

    if positive is not None and A.LOW_POSITIVE_RATE in by_name:
        # The workshop's alert: positive-class rate under the floor, with enough traffic.
        low = _Case(f"'{positive.label}' rate under the floor fires, only after its for", s, steps, interval)
        others = [c.label for c in profile.classes if c.label != positive.label]
        ratio = min(0.05, s.positive_rate_floor / 2)
        low_mix = {positive.label: 20.0 * ratio, **{o: 20.0 * (1 - ratio) / len(others) for o in others}}
        _standard_inputs(low, profile, low_mix)
        low.expect(n.positive_ratio, end, labels, ratio)
        low.expect(n.model_increase, end, labels, 2 * 20 * seconds(s.rate_window) / interval)
        shares = np.array([low_mix[c.label] / 20.0 for c in profile.classes])
        low.expect(n.prediction_psi, end, labels, psi(shares, [prior[c.label] for c in profile.classes]))
        low.alert(by_name[A.LOW_POSITIVE_RATE], hold / 2, [], url)
        # Fires where the window's rows make the low rate evidence (a floor near 0 needs more).
        needs = positive_needed(ratio, s)
        evident = needs is not None and 2 * 20 * seconds(s.rate_window) / interval >= needs
        low.alert(by_name[A.LOW_POSITIVE_RATE], end, [(labels, ratio)] if evident else [], url)
        # The class shares moved too: prediction drift, if past its threshold with enough traffic.
        low_psi = psi(shares, [prior[c.label] for c in profile.classes])
        drifted_too = _drift_holds(low_psi, s.prediction_psi_threshold, len(profile.classes), profile.rows,
                                   2 * 20 * seconds(s.drift_window) / interval, s)
        low.alert(by_name[A.PREDICTION_DRIFT], end, [(labels, low_psi)] if drifted_too else [], url)
        cases.append(low)

        # The same mix under the traffic guard: nothing fires.
        guarded = _Case(f"'{positive.label}' rate under the floor on too little traffic does not fire", s, steps, interval)
        per_step = 0.25 * min(s.min_samples, s.min_per_bin * len(profile.classes)) * interval / (2 * window)
        _standard_inputs(guarded, profile, {k: v / 20.0 * per_step for k, v in low_mix.items()})
        guarded.expect(n.positive_ratio, end, labels, ratio)
        guarded.alert(by_name[A.LOW_POSITIVE_RATE], end, [], url)
        guarded.alert(by_name[A.PREDICTION_DRIFT], end, [], url)
        cases.append(guarded)

    cases += _feature_drift_cases(profile, s, steps, interval, end, by_name, url)
    cases += _service_cases(profile, s, steps, interval, end, by_name, url)
    cases += _boundary_cases(profile, s, steps, interval, by_name, url)
    changes = _abrupt_cases(profile, s, interval, by_name, url) + _change_cases(profile, s, steps, interval)
    if not profile.regression:
        quality_cases += _quality_boundary_cases(profile, s, q_steps, q_interval, by_name, url)
        quality_cases += _quality_change_cases(profile, s, q_steps, q_interval)
        if profile.probabilities:
            quality_cases += _estimated_quality_cases(profile, s, q_steps, q_interval, q_end, by_name, url)

    def document(evaluation_interval: str, group: list[_Case]) -> str:
        return dump_yaml({
            "rule_files": list(rule_files),
            "evaluation_interval": evaluation_interval,
            "group_eval_order": list(group_names(profile)),
            "tests": [case.document() for case in group],
        })

    # Three files, so that promtool (one core each) can run them side by side.
    return {"rules_test.yml": document(_duration(interval), cases),
            "changes_test.yml": document(_duration(interval), changes),
            "quality_test.yml": document(f"{int(q_interval)}s", quality_cases)}


def _feature_drift_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float, end: float,
                         by_name: Mapping[str, Alert], url: str) -> list[_Case]:
    """The first numeric input drifts, the others stay as in training: the statistics of the
    summed replicas, the alert per feature."""
    if not profile.features:
        return []
    n = Names.of(s)
    hold = seconds(s.alert_for)
    labels = {"model": profile.model}
    mix = mix_of(profile, 40.0)
    drifted = profile.features[0]
    drift = _Case(f"'{drifted.name}' drifts: KS and PSI of the summed replicas, alert per feature", s, steps, interval)
    counts = _drift_past(profile, drifted.name, s)
    _standard_inputs(drift, profile, mix, feature_counts={drifted.name: counts})
    live_cdf = np.cumsum(counts) / counts.sum()
    expected_psi = psi(bin_shares(live_cdf), bin_shares(drifted.quantile_reference))
    expected_ks = ks_distance(live_cdf, drifted.quantile_reference)
    flabels = {**labels, "feature": drifted.name}
    for bound, value in zip(QUANTILE_BUCKETS, live_cdf):
        drift.expect(n.live_cdf, end, {**flabels, "le": bound_label(bound)}, float(value))
    drift.expect(n.ks, end, flabels, expected_ks)
    drift.expect(n.psi, end, flabels, expected_psi)
    drift.expect(n.feature_increase, end, flabels, 2 * counts.sum() * seconds(s.drift_window) / interval)
    drift.alert(by_name[A.FEATURE_DRIFT], hold / 2, [], url)
    drift.alert(by_name[A.FEATURE_DRIFT], end, [(flabels, expected_psi)], url)
    return [drift]


def _service_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float, end: float,
                   by_name: Mapping[str, Alert], url: str) -> list[_Case]:
    """Invalid input, server errors and latency each past its threshold; a replica down."""
    n = Names.of(s)
    labels = {"model": profile.model}
    mix = mix_of(profile, 40.0)
    total = sum(mix.values())
    # Invalid input, server errors and latency, each past its threshold.
    broken = _Case("invalid input, 5xx answers and slow answers fire their alerts", s, steps, interval)
    # Each ratio halfway from its threshold to 1; every answer in a bucket past the p99 threshold.
    invalid_ratio = (1 + s.invalid_ratio_threshold) / 2
    error_ratio = (1 + s.error_ratio_threshold) / 2
    slow = _slow_bucket(s.latency_p99_seconds)
    _standard_inputs(broken, profile, mix, invalid_per_step=total * invalid_ratio / (1 - invalid_ratio),
                     errors_per_step=total * error_ratio, slow_bucket=slow)
    broken.expect(n.invalid_ratio, end, labels, invalid_ratio)
    broken.expect(n.error_ratio, end, {"job": JOB}, error_ratio)
    for q in (50, 95, 99):
        broken.expect(n.latency(q), end, {"job": JOB}, _p_in_bucket(slow, q / 100))
    broken.alert(by_name[A.INVALID_INPUT_RATE], end, [(labels, invalid_ratio)], url)
    broken.alert(by_name[A.SERVER_ERRORS], end, [({"job": JOB}, error_ratio)], url)
    broken.alert(by_name[A.HIGH_LATENCY], end, [({"job": JOB}, _p_in_bucket(slow, 0.99))], url)

    # One replica down: fires after down_for, for that replica only.
    down = _Case("a replica that cannot be scraped fires ModelServerDown after its for", s, steps, interval)
    _standard_inputs(down, profile, mix)
    down.series = [x for x in down.series if not x["series"].startswith("up{")]
    down.gauge("up", 0.0, instances=INSTANCES[:1])
    down.gauge("up", 1.0, instances=INSTANCES[1:])
    down.alert(by_name[A.SERVER_DOWN], seconds(s.down_for) / 2, [], url)
    down.alert(by_name[A.SERVER_DOWN], seconds(s.down_for) + 3 * interval,
               [({"job": JOB, "instance": INSTANCES[0]}, 0.0)], url)
    return [broken, down]

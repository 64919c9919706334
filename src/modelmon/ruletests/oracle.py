"""The Python model of every alert, the independent reference the promtool cases are built
from: when each rate, drift and quality alert must fire, given the window's counts and the
evidence (`modelmon.stats.evidence`) they make. It mirrors what `modelmon.rules` writes in PromQL,
with `modelmon.stats` computing each statistic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modelmon.contract import alerts as A
from modelmon.contract.buckets import QUANTILE_BUCKETS
from modelmon.model.reference import CategoryProfile, FeatureProfile, ReferenceProfile
from modelmon.rules.alerts import Alert, low_rate_alerted
from modelmon.rules.series import JOB
from modelmon.ruletests.case import REPLICAS, Case
from modelmon.ruletests.inputs import category_reference, p_in_bucket, standard_inputs
from modelmon.ruletests.solve import FAST_BUCKET, window_increase
from modelmon.settings import Settings, seconds
from modelmon.stats.drift import bin_shares, ks_distance, psi
from modelmon.stats.evidence import ks_critical, needed, psi_critical, wilson_upper, z_of


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

    def write(self, case: Case, profile: ReferenceProfile) -> None:
        standard_inputs(case, profile, self.classes, feature_counts=self.features, invalid_per_step=self.invalid,
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
class Condition:
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


def conditions_of(profile: ReferenceProfile, s: Settings, traffic: Traffic) -> list[Condition]:
    """The steady-state condition of every alert but ModelServerDown and ModelQualityDrop."""
    model = {"model": profile.model}
    job = {"job": JOB}
    w, d = seconds(s.rate_window), seconds(s.drift_window)
    rows = sum(traffic.classes.values())
    out = []
    if profile.positive is not None and low_rate_alerted(profile, s) and rows:
        ratio = traffic.classes.get(profile.positive.label, 0.0) / rows
        out.append(Condition(A.LOW_POSITIVE_RATE, model, ratio, ratio < s.positive_rate_floor, REPLICAS * rows, w,
                              0.0, positive_needed(ratio, s)))
    if rows:
        value, count = prediction_drift(profile, s, traffic.prediction_bins(profile) if profile.regression else
                                         np.array([traffic.classes.get(c.label, 0.0) for c in profile.classes]))
        out.append(Condition(A.PREDICTION_DRIFT, model, value, count is not None, REPLICAS * rows, d, 0.0, count))
    for f in profile.features:
        counts = traffic.features[f.name]
        value, count = feature_drift(f, s, counts)
        out.append(Condition(A.FEATURE_DRIFT, {**model, "feature": f.name}, value, count is not None,
                              REPLICAS * counts.sum(), d, 0.0, count))
    for category in profile.categories:
        counts = traffic.category_counts(category, profile)
        value, count = category_drift(category, s, counts)
        out.append(Condition(A.FEATURE_DRIFT, {**model, "feature": category.name}, value, count is not None,
                              REPLICAS * counts.sum(), d, 0.0, count))
    for nullable in profile.nullable if rows else ():
        share = traffic.missing_rows(nullable) / rows
        out.append(Condition(A.FEATURE_MISSING, {**model, "feature": nullable.name}, share,
                              abs(share - nullable.missing_share) > s.missing_share_tolerance, REPLICAS * rows, d,
                              s.min_drift_samples))
    checked = traffic.invalid + traffic.predicted
    if checked:
        ratio = traffic.invalid / checked
        out.append(Condition(A.INVALID_INPUT_RATE, model, ratio, ratio > s.invalid_ratio_threshold, REPLICAS * checked,
                              w, s.min_samples))
    if traffic.requests:
        ratio = traffic.errors / traffic.requests
        out.append(Condition(A.SERVER_ERRORS, job, ratio, ratio > s.error_ratio_threshold, REPLICAS * traffic.requests,
                              w, s.min_samples))
        p99 = p_in_bucket(traffic.slow_bucket, 0.99)
        out.append(Condition(A.HIGH_LATENCY, job, p99, p99 > s.latency_p99_seconds, REPLICAS * traffic.requests, w,
                              s.min_samples))
    return out


def outcome_count(profile: ReferenceProfile) -> int:
    """Bins of the predictions' PSI: a regressor's rank bins, else the classes."""
    return len(QUANTILE_BUCKETS) if profile.regression else len(profile.classes)


def prediction_drift(profile: ReferenceProfile, s: Settings, counts: np.ndarray,
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


def feature_drift(f: FeatureProfile, s: Settings, counts: np.ndarray,
                   factor: float = 1.0) -> tuple[float, float | None]:
    live = np.cumsum(counts) / counts.sum()
    value = psi(bin_shares(live), bin_shares(f.quantile_reference))
    return value, drift_needed(value, factor * s.psi_threshold, len(QUANTILE_BUCKETS), f.count, s,
                               ks_distance(live, f.quantile_reference), factor * s.ks_threshold)


def category_drift(category: CategoryProfile, s: Settings, counts: np.ndarray,
                    factor: float = 1.0) -> tuple[float, float | None]:
    value = psi(counts / counts.sum(), category_reference(category))
    return value, drift_needed(value, factor * s.psi_threshold, len(category.values) + 1, category.count, s)


def check_alerts(case: Case, conditions: Sequence[Condition], alerts_by_name: Mapping[str, Alert],
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


EVIDENCE_ALERTS = (A.LOW_POSITIVE_RATE, A.FEATURE_DRIFT, A.PREDICTION_DRIFT)


def drift_holds(psi_value: float, psi_threshold: float, bins: int, reference_count: float, n: float, s: Settings,
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


def holding_by_step(profile: ReferenceProfile, s: Settings, before: Traffic, after: Traffic, change: int, at: int,
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
            return np.array([REPLICAS * window_increase(x, y, change, at, window) for x, y in zip(a, b, strict=True)])

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
            if drift_holds(value, factor * s.prediction_psi_threshold, len(QUANTILE_BUCKETS), profile.rows,
                            float(bins.sum()), s, ks_distance(live, reference) if weigh_ks else None,
                            factor * s.ks_threshold):
                out[A.PREDICTION_DRIFT].setdefault("", (model, value))
        else:
            classes_d = counts([before.classes.get(c, 0.0) for c in labels],
                               [after.classes.get(c, 0.0) for c in labels], d)
            value = psi(classes_d / classes_d.sum(), [c.prior for c in profile.classes])
            if drift_holds(value, factor * s.prediction_psi_threshold, len(labels), profile.rows,
                            float(classes_d.sum()), s):
                out[A.PREDICTION_DRIFT].setdefault("", (model, value))
        for f in profile.features:
            bins = counts(before.features[f.name], after.features[f.name], d)
            live = np.cumsum(bins) / bins.sum()
            value = psi(bin_shares(live), bin_shares(f.quantile_reference))
            if drift_holds(value, factor * s.psi_threshold, len(QUANTILE_BUCKETS), f.count, float(bins.sum()), s,
                            ks_distance(live, f.quantile_reference) if weigh_ks else None, factor * s.ks_threshold):
                out[A.FEATURE_DRIFT].setdefault(f.name, ({**model, "feature": f.name}, value))
        for category in profile.categories:
            values = counts(before.category_counts(category, profile), after.category_counts(category, profile), d)
            value = psi(values / values.sum(), category_reference(category))
            if drift_holds(value, factor * s.psi_threshold, len(category.values) + 1, category.count,
                            float(values.sum()), s):
                out[A.FEATURE_DRIFT].setdefault(category.name, ({**model, "feature": category.name}, value))
    return out


def firing_at(holding: Mapping[int, Mapping[str, Mapping[str, tuple[Mapping[str, str], float]]]], alert: str, k: int,
            hold: int) -> list[tuple[Mapping[str, str], float]]:
    """The series of `alert` firing at step k: holding at every evaluation of its `for`."""
    return [holding[k][alert][key] for key in holding[k][alert]
            if all(key in holding[j][alert] for j in range(k - hold, k + 1))]

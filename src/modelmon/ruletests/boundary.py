"""Boundary cases: each alert just past and just inside its threshold, and each count just over
and under what it needs (the evidence, or the traffic guard).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from modelmon.contract import alerts as A
from modelmon.contract.buckets import QUANTILE_BUCKETS
from modelmon.model.reference import ReferenceProfile
from modelmon.rules.alerts import Alert, low_rate_alerted
from modelmon.ruletests.case import REPLICAS, Case
from modelmon.ruletests.inputs import category_reference, confusion_with_accuracy, standard_inputs
from modelmon.ruletests.oracle import (
    Condition,
    Traffic,
    category_drift,
    check_alerts,
    conditions_of,
    feature_drift,
    outcome_count,
    positive_needed,
    prediction_drift,
)
from modelmon.ruletests.solve import (
    class_shares_at,
    first_of,
    just_inside,
    just_past,
    ks_alone_counts,
    ks_bins,
    latency_bucket,
    per_step_count,
    psi_bins,
    targets,
)
from modelmon.settings import Settings, seconds
from modelmon.stats.drift import bin_shares


def boundary_traffic(profile: ReferenceProfile, s: Settings, interval: float, past: bool, volume: float,
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
            moved = first_of(psi_bins(reference_bins, t)
                           for t in targets(factor * s.prediction_psi_threshold, past, far))
        elif past and not far:
            moved = ks_alone_counts(reference_bins, factor * s.ks_threshold, factor * s.prediction_psi_threshold)
        else:
            moved = first_of(ks_bins(reference_bins, t) for t in targets(factor * s.ks_threshold, past, far))
        if moved is None:
            return None
        shares = {"": 1.0}
        rows = per_step_count(count(prediction_drift(profile, s, moved, factor)[1], outcome_count(profile)), d, interval)
        predictions = moved * rows
    elif prediction_psi:
        class_shares = first_of(class_shares_at(profile, t)
                              for t in targets(factor * s.prediction_psi_threshold, past, far))
        if class_shares is None:
            return None
        shares = class_shares
        counts = np.array([shares[c.label] for c in profile.classes])
        rows = per_step_count(count(prediction_drift(profile, s, counts, factor)[1], outcome_count(profile)), d, interval)
    elif positive is not None and low_rate_alerted(profile, s):
        floor = s.positive_rate_floor
        p = (floor / 20 if far else just_past(floor, False)) if past else just_inside(floor, False)
        others = [c for c in profile.classes if c.label != positive.label]
        rest = sum(c.prior for c in others)
        shares = {positive.label: p, **{c.label: (1 - p) * c.prior / rest for c in others}}
        rows = per_step_count(volume * max(positive_needed(p, s) or 0.0, s.min_per_bin * len(profile.classes)), w,
                         interval)
    else:
        shares = {c.label: c.prior for c in profile.classes}
        rows = per_step_count(volume * s.min_drift_samples, d, interval)  # the missing shares' guard
    features = _feature_counts(profile, s, past, far, ks_alone, factor, lambda moved, need, bins:
                               moved * per_step_count(count(need, bins), d, interval))
    rate = seconds(s.rate_window)
    requests = per_step_count(volume * s.min_samples, rate, interval)
    invalid_share = just_past(s.invalid_ratio_threshold, True) if past else just_inside(s.invalid_ratio_threshold, True)
    invalid_share = min(invalid_share, (1 + s.invalid_ratio_threshold) / 2)
    error_share = just_past(s.error_ratio_threshold, True) if past else just_inside(s.error_ratio_threshold, True)
    error_share = min(error_share, (1 + s.error_ratio_threshold) / 2)
    categories = _category_counts(profile, s, past, far, factor, lambda moved, need, bins:
                                  moved * per_step_count(count(need, bins), d, interval))
    missing = _missing_counts(profile, s, past, rows)
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
        slow_bucket=latency_bucket(s.latency_p99_seconds, past),
    )


Counts = Callable[[np.ndarray, "float | None", int], np.ndarray]  # (moved shares, count needed, bins) -> per step


def _feature_counts(profile: ReferenceProfile, s: Settings, past: bool, far: bool, ks_alone: bool, factor: float,
                    per_step: Counts) -> dict[str, np.ndarray]:
    """Each numeric input's rank-bin counts: the PSI branch alone past (or inside) its threshold
    on the first input (far: on every input), the KS branch alone on the last, the reference on
    the rest."""
    features = {}
    for i, f in enumerate(profile.features):
        reference = bin_shares(f.quantile_reference)
        bins: np.ndarray | None = None
        if (i == 0 and not ks_alone) or (far and not ks_alone):  # the PSI branch alone (far: every input's)
            bins = first_of(psi_bins(reference, t) for t in targets(factor * s.psi_threshold, past, far))
        elif i == len(profile.features) - 1:  # the KS branch alone, where a PSI under its threshold allows
            if past and not far:
                bins = ks_alone_counts(reference, factor * s.ks_threshold, factor * s.psi_threshold)
            else:
                bins = first_of(ks_bins(reference, t) for t in targets(factor * s.ks_threshold, past, far))
        moved = reference if bins is None else bins
        features[f.name] = per_step(moved, feature_drift(f, s, moved, factor)[1], len(QUANTILE_BUCKETS))
    return features


def _category_counts(profile: ReferenceProfile, s: Settings, past: bool, far: bool, factor: float,
                     per_step: Counts) -> dict[str, np.ndarray]:
    """Each categorical input's counts: the first past (or inside) its PSI threshold (far: every
    one), the rest as in training."""
    categories = {}
    for i, category in enumerate(profile.categories):
        reference = category_reference(category)
        found = first_of(psi_bins(reference, t) for t in targets(factor * s.psi_threshold, past, far))
        moved = reference if found is None or (i > 0 and not far) else found
        categories[category.name] = per_step(moved, category_drift(category, s, moved, factor)[1],
                                             len(category.values) + 1)
    return categories


def _missing_counts(profile: ReferenceProfile, s: Settings, past: bool, rows: float) -> dict[str, float]:
    """Each nullable input's missing values per step, its share just past (or inside) the tolerance."""
    missing = {}
    for nullable in profile.nullable:
        change = just_past(s.missing_share_tolerance, True) if past else just_inside(s.missing_share_tolerance, True)
        share = nullable.missing_share + change
        if share > 1.0:
            share = nullable.missing_share - change
        missing[nullable.name] = max(share, 0.0) * rows
    return missing


def boundary_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float,
                    by_name: Mapping[str, Alert], url: str) -> list[Case]:
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
            traffic = boundary_traffic(profile, s, interval, past, volume, prediction_psi, ks_alone, far)
            if traffic is None:
                continue
            case = Case(f"{part} {title}", s, steps, interval)
            traffic.write(case, profile)
            conditions = conditions_of(profile, s, traffic)
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
                        check_alerts(case, [x for x in conditions if x.alert == c.alert], by_name, at, url)
            check_alerts(case, conditions, by_name, end, url)
            out.append(case)
    return out


def quality_boundary_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float,
                            by_name: Mapping[str, Alert], url: str) -> list[Case]:
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
        accuracy = just_past(s.accuracy_floor, False) if past else just_inside(s.accuracy_floor, False)
        labels = per_step_count(volume * s.min_labels, q, interval)
        confusion = confusion_with_accuracy(profile, accuracy, scale=labels, skew=True)
        case = Case(f"labels {title}", s, steps, interval)
        standard_inputs(case, profile, mix, confusion=[confusion, confusion])
        condition = Condition(alert.name, {"model": profile.model}, accuracy, accuracy < s.accuracy_floor,
                               REPLICAS * labels, q, s.min_labels)
        start = condition.active_from(interval)
        if title.endswith("for") and start is not None:
            check_alerts(case, [condition], by_name, start + math.ceil(hold / 2 / interval) * interval, url)
        check_alerts(case, [condition], by_name, end, url)
        out.append(case)
    return out

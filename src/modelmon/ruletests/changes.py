"""Traffic that changes: abrupt changes the fast branch must page on, evaluation by evaluation,
and counters that change pace inside their windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from modelmon.contract.buckets import LATENCY_BUCKETS, QUANTILE_BUCKETS
from modelmon.contract.names import bound_label
from modelmon.model.reference import CategoryProfile, ReferenceProfile
from modelmon.rules.alerts import Alert, low_rate_alerted
from modelmon.rules.series import JOB, LATENCY_QUANTILES, Names
from modelmon.ruletests.boundary import boundary_traffic
from modelmon.ruletests.case import REPLICAS, Case
from modelmon.ruletests.inputs import (
    category_labels,
    category_reference,
    confusion_quality,
    confusion_with_accuracy,
    mix_of,
    standard_inputs,
)
from modelmon.ruletests.oracle import EVIDENCE_ALERTS, Traffic, firing_at, holding_by_step
from modelmon.ruletests.quality import expect_estimated
from modelmon.ruletests.solve import quantile_from_counts, steps_of, window_increase
from modelmon.settings import Settings, seconds
from modelmon.stats.drift import bin_shares, ks_distance, psi, total_variation
from modelmon.stats.evidence import ks_critical, psi_critical, wilson_upper, z_of


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


def abrupt_cases(profile: ReferenceProfile, s: Settings, interval: float, by_name: Mapping[str, Alert],
                  url: str) -> list[Case]:
    """Traffic as in training, then at once past (or inside) the fast branch's thresholds: each
    rate and drift alert checked at every evaluation where the model says its firing changes,
    the one before, and at the end."""
    d, short, hold = (steps_of(seconds(x), interval) for x in (s.drift_window, s.short_window, s.alert_for))
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
            after = boundary_traffic(profile, s, interval, past, volume, prediction_psi, far=far,
                                      factor=s.short_factor, window=seconds(s.short_window))
            if after is None:
                continue
            before = _as_in_training(profile, after, 1.0)
            name = f"abrupt change, {part} {title}"
            case, later = Case(name, s, last + 2, interval), Case(name, s, last + 2, interval)
            before.write(case, profile)
            after.write(later, profile)
            case.changing_to(later, change)
            holding = {k: holding_by_step(profile, s, before, after, change, k, interval)
                       for k in range(change - hold, last + 1)}

            for alert in (a for a in EVIDENCE_ALERTS if a in by_name):
                firing = {k: firing_at(holding, alert, k, hold) for k in range(change, last + 1)}
                checks = {last}
                for k in range(change + 1, last + 1):
                    if firing[k] != firing[k - 1]:
                        checks |= {k - 1, k}
                for k in sorted(checks):
                    case.alert(by_name[alert], k * interval, firing[k], url)
            out.append(case)
    return out


def change_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float) -> list[Case]:
    n = Names.of(s)
    end = steps - 2
    w, d = steps_of(seconds(s.rate_window), interval), steps_of(seconds(s.drift_window), interval)
    after = boundary_traffic(profile, s, interval, past=True, volume=10.0)
    if w is None or d is None or after is None or w < 2:
        return []
    # Before: as in training, at half the pace (so totals change too, not only shares).
    before = _as_in_training(profile, after, 0.5)
    change = end - max(1, w // 4)  # 40 % of the window is "after": no quantile sits on a bucket edge
    name = "every counter changes pace a quarter of a rate window before the check: each ratio over its own window"
    case, later = Case(name, s, steps, interval), Case(name, s, steps, interval)
    before.write(case, profile)
    after.write(later, profile)
    case.changing_to(later, change)
    at = end * interval
    model = {"model": profile.model}

    def inc(a: float, b: float, window: int) -> float:
        return REPLICAS * window_increase(a, b, change, end, window)  # both replicas

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
        expect_categories(case, n, at, profile, category, counts)
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
        case.expect(n.latency(q), at, {"job": JOB}, quantile_from_counts(q / 100, LATENCY_BUCKETS, buckets))
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


def _expect_evidence(case: Case, profile: ReferenceProfile, s: Settings, at: float, before: Traffic,
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
        return np.array([REPLICAS * window_increase(x, y, change, end, window) for x, y in zip(a, b, strict=True)])

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
                expect_categories(case, x, at, profile, category, counts)


def expect_categories(case: Case, n: Names, at: float, profile: ReferenceProfile, category: CategoryProfile,
                       counts: np.ndarray) -> None:
    """Live shares, PSI, distance and count of a categorical input whose drift window holds `counts`."""
    labels = {"model": profile.model, "feature": category.name}
    live = counts / counts.sum()
    reference = category_reference(category)
    for label, share in zip(category_labels(category), live, strict=True):
        case.expect(n.category_share, at, {**labels, "category": label}, float(share))
    case.expect(n.psi, at, labels, psi(live, reference))
    case.expect(n.category_distance, at, labels, total_variation(live, reference))
    case.expect(n.feature_increase, at, labels, float(counts.sum()))


def quality_change_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float) -> list[Case]:
    """Labels (and their share of the traffic) change pace half a quality window before the check."""
    n = Names.of(s)
    end = steps - 2
    q = steps_of(seconds(s.quality_window), interval)
    if q is None or q < 2:
        return []
    change = end - q // 2
    mix = {c.label: c.prior * 40 for c in profile.classes}
    more = {label: 2 * rows for label, rows in mix.items()}  # predictions double their pace too
    good = confusion_with_accuracy(profile, (1 + s.accuracy_floor) / 2, scale=4.0)
    bad = confusion_with_accuracy(profile, s.accuracy_floor / 2, scale=12.0, skew=True)
    name = "labels change in number and agreement half a quality window before the check"
    case, later = Case(name, s, steps, interval), Case(name, s, steps, interval)
    # The probabilities' estimate changes too, from right to far too hopeful.
    estimated_good = confusion_with_accuracy(profile, (1 + s.accuracy_floor) / 2, scale=sum(mix.values()))
    estimated_bad = confusion_with_accuracy(profile, 0.75 * s.accuracy_floor, scale=sum(more.values()), skew=True)
    estimates = profile.probabilities
    standard_inputs(case, profile, mix, confusion=[good, good], expected=[estimated_good] * REPLICAS if estimates else None)
    standard_inputs(later, profile, more, confusion=[bad, bad], expected=[estimated_bad] * REPLICAS if estimates else None)
    case.changing_to(later, change)
    at = end * interval
    window = seconds(s.quality_window)
    summed = {cell: REPLICAS * window_increase(good[cell], bad[cell], change, end, q) for cell in good}
    model = {"model": profile.model}
    positive = profile.positive
    realized = confusion_quality(summed, positive.label if positive else None)
    for metric, expected in realized.items():
        case.expect(getattr(n, metric), at, model, expected)
    if estimates:
        expect_estimated(case, n, at, profile, {cell: REPLICAS * window_increase(estimated_good[cell], estimated_bad[cell],
                                                                            change, end, q)
                                                 for cell in estimated_good}, window)
        case.expect(n.accuracy_upper, at, model, wilson_upper(realized["accuracy"], sum(summed.values()),
                                                             z_of(s.confidence)))
    for (actual, predicted), count in summed.items():
        case.expect(n.confusion_rate, at, {**model, "actual": actual, "predicted": predicted}, count / window)
    predictions = REPLICAS * window_increase(sum(mix.values()), sum(more.values()), change, end, q)
    case.expect(n.label_coverage, at, model, sum(summed.values()) / predictions)
    case.expect(n.labels_increase, at, model, sum(summed.values()))
    return [case]

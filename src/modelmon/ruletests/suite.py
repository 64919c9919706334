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

from collections.abc import Mapping, Sequence

import numpy as np

from modelmon.contract import alerts as A
from modelmon.contract.buckets import QUANTILE_BUCKETS
from modelmon.contract.names import bound_label
from modelmon.model.reference import ReferenceProfile
from modelmon.rules.alerts import Alert, alerts, dashboard_uid
from modelmon.rules.files import group_names
from modelmon.rules.render import dump_yaml
from modelmon.rules.series import JOB, Names
from modelmon.ruletests.boundary import boundary_cases, quality_boundary_cases
from modelmon.ruletests.case import REPLICAS, Case, duration_text
from modelmon.ruletests.changes import abrupt_cases, change_cases, expect_categories, quality_change_cases
from modelmon.ruletests.inputs import category_reference, mix_of, reference_counts, standard_inputs
from modelmon.ruletests.oracle import drift_holds, positive_needed
from modelmon.ruletests.quality import (
    classification_quality_cases,
    estimated_quality_cases,
    expect_quiet,
    regression_quality_cases,
)
from modelmon.ruletests.service import feature_drift_cases, service_cases
from modelmon.ruletests.solve import steps_of
from modelmon.settings import Settings, seconds
from modelmon.stats.drift import bin_shares, ks_distance, psi


def _step(scrape: float, finest: float, spans: Sequence[float]) -> float:
    """The coarsest whole number of seconds up to `finest` that divides every span (so
    windows and `for` are whole steps), never finer than the scrape interval."""
    for step in range(int(finest), 0, -1):
        if step >= scrape and all(steps_of(span, step) is not None for span in spans):
            return float(step)
    return max(scrape, float(int(finest)))


def rule_tests(profile: ReferenceProfile, settings: Settings, rule_files: Sequence[str]) -> dict[str, str]:
    """promtool test files (name -> YAML) for the rules that `rules.rule_files` renders.

    The ground-truth cases have a file of their own, evaluated at most twice a minute: their
    window is an hour in production, and 5-second evaluations of it would take minutes. The
    cases where traffic changes (abruptly, or in pace) have another.
    """
    s = settings
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
    cases: list[Case] = []

    cases.append(_normal_case(profile, s, steps, interval, end, by_name, url))

    if profile.regression:
        quality_cases = regression_quality_cases(profile, s, q_steps, q_interval, q_end, by_name, url)
    else:
        quality_cases = classification_quality_cases(profile, s, q_steps, q_interval, q_end, by_name, url)

    cases += _positive_rate_cases(profile, s, steps, interval, end, by_name, url)

    cases += feature_drift_cases(profile, s, steps, interval, end, by_name, url)
    cases += service_cases(profile, s, steps, interval, end, by_name, url)
    cases += boundary_cases(profile, s, steps, interval, by_name, url)
    changes = abrupt_cases(profile, s, interval, by_name, url) + change_cases(profile, s, steps, interval)
    if not profile.regression:
        quality_cases += quality_boundary_cases(profile, s, q_steps, q_interval, by_name, url)
        quality_cases += quality_change_cases(profile, s, q_steps, q_interval)
        if profile.probabilities:
            quality_cases += estimated_quality_cases(profile, s, q_steps, q_interval, q_end, by_name, url)

    def document(evaluation_interval: str, group: list[Case]) -> str:
        return dump_yaml({
            "rule_files": list(rule_files),
            "evaluation_interval": evaluation_interval,
            "group_eval_order": list(group_names(profile)),
            "tests": [case.document() for case in group],
        })

    # Three files, so that promtool (one core each) can run them side by side.
    return {"rules_test.yml": document(duration_text(interval), cases),
            "changes_test.yml": document(duration_text(interval), changes),
            "quality_test.yml": document(f"{int(q_interval)}s", quality_cases)}


def _normal_case(profile: ReferenceProfile, s: Settings, steps: int, interval: float, end: float,
                 by_name: Mapping[str, Alert], url: str) -> Case:
    """Traffic as in training: ratios and drift statistics at their reference values, no alert."""
    n = Names.of(s)
    labels = {"model": profile.model}
    positive = profile.positive
    normal = Case("normal traffic: statistics at their reference values, nothing fires", s, steps, interval)
    mix = mix_of(profile, 40.0)  # shares exactly as in training
    standard_inputs(normal, profile, mix)
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
            normal.expect(n.class_rate, end, {**labels, "class": label}, REPLICAS * per_step / interval)
        live = np.array([mix[c.label] / total for c in profile.classes])
        normal.expect(n.prediction_psi, end, labels, psi(live, [c.prior for c in profile.classes]))
        if positive is not None:  # recorded for the dashboard also where no alert reads it
            normal.expect(n.positive_ratio, end, labels, mix[positive.label] / total)
    normal.expect(n.model_rate, end, labels, REPLICAS * total / interval)
    normal.expect(n.request_rate, end, {"job": JOB}, REPLICAS * total / interval)
    normal.expect(n.error_ratio, end, {"job": JOB}, 0.0)
    normal.expect(n.invalid_ratio, end, labels, 0.0)
    for f in profile.features:
        flabels = {**labels, "feature": f.name}
        normal.expect(n.psi, end, flabels, 0.0)
        normal.expect(n.ks, end, flabels, ks_distance(np.cumsum(reference_counts(f.quantile_reference, f.count))
                                                      / f.count, f.quantile_reference))
        for bound, share in zip(QUANTILE_BUCKETS, bin_shares(f.quantile_reference)):
            normal.expect(n.reference_share, end, {**flabels, "le": bound_label(bound)}, share)
    in_drift_window = REPLICAS * seconds(s.drift_window) / interval
    for category in profile.categories:
        expect_categories(normal, n, end, profile, category,
                           category_reference(category) * profile.rows * in_drift_window)
    for nullable in profile.nullable:
        normal.expect(n.missing_share, end, {**labels, "feature": nullable.name}, nullable.missing_share)
    expect_quiet(normal, end, list(by_name), by_name, url)
    return normal


def _positive_rate_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float, end: float,
                         by_name: Mapping[str, Alert], url: str) -> list[Case]:
    """The workshop's alert: positive-class rate under the floor, with enough traffic and under
    the traffic guard."""
    n = Names.of(s)
    labels = {"model": profile.model}
    positive = profile.positive
    window = max(seconds(s.rate_window), seconds(s.drift_window))
    hold = seconds(s.alert_for)
    prior = {c.label: c.prior for c in profile.classes}
    cases: list[Case] = []
    if positive is None or A.LOW_POSITIVE_RATE not in by_name:
        return cases
    # The workshop's alert: positive-class rate under the floor, with enough traffic.
    low = Case(f"'{positive.label}' rate under the floor fires, only after its for", s, steps, interval)
    others = [c.label for c in profile.classes if c.label != positive.label]
    ratio = min(0.05, s.positive_rate_floor / 2)
    low_mix = {positive.label: 20.0 * ratio, **{o: 20.0 * (1 - ratio) / len(others) for o in others}}
    standard_inputs(low, profile, low_mix)
    low.expect(n.positive_ratio, end, labels, ratio)
    low.expect(n.model_increase, end, labels, REPLICAS * 20 * seconds(s.rate_window) / interval)
    shares = np.array([low_mix[c.label] / 20.0 for c in profile.classes])
    low.expect(n.prediction_psi, end, labels, psi(shares, [prior[c.label] for c in profile.classes]))
    low.alert(by_name[A.LOW_POSITIVE_RATE], hold / 2, [], url)
    # Fires where the window's rows make the low rate evidence (a floor near 0 needs more).
    needs = positive_needed(ratio, s)
    evident = needs is not None and REPLICAS * 20 * seconds(s.rate_window) / interval >= needs
    low.alert(by_name[A.LOW_POSITIVE_RATE], end, [(labels, ratio)] if evident else [], url)
    # The class shares moved too: prediction drift, if past its threshold with enough traffic.
    low_psi = psi(shares, [prior[c.label] for c in profile.classes])
    drifted_too = drift_holds(low_psi, s.prediction_psi_threshold, len(profile.classes), profile.rows,
                               REPLICAS * 20 * seconds(s.drift_window) / interval, s)
    low.alert(by_name[A.PREDICTION_DRIFT], end, [(labels, low_psi)] if drifted_too else [], url)
    cases.append(low)

    # The same mix under the traffic guard: nothing fires.
    guarded = Case(f"'{positive.label}' rate under the floor on too little traffic does not fire", s, steps, interval)
    per_step = 0.25 * min(s.min_samples, s.min_per_bin * len(profile.classes)) * interval / (REPLICAS * window)
    standard_inputs(guarded, profile, {k: v / 20.0 * per_step for k, v in low_mix.items()})
    guarded.expect(n.positive_ratio, end, labels, ratio)
    guarded.alert(by_name[A.LOW_POSITIVE_RATE], end, [], url)
    guarded.alert(by_name[A.PREDICTION_DRIFT], end, [], url)
    cases.append(guarded)
    return cases

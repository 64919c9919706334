"""`promtool test rules` cases for every generated rule, with expectations computed in Python.

Each case feeds synthetic series from two instances of the server (so every ratio is checked
to add up across replicas), evaluates the recorded series against values computed here with
`modelmon.drift`, and checks each alert fires when it should, only after its `for`, and not
under the traffic guard.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import names as N
from .drift import bin_shares, ks_distance, psi
from .metrics import LATENCY_BUCKETS
from .names import bound_label
from .profile import QUANTILE_BUCKETS, ReferenceProfile
from .rules import JOB, PREDICT_HANDLER, Alert, Names, alerts, dashboard_uid, dump_yaml, group_names
from .settings import Settings, seconds

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
        self.exprs: list[dict[str, Any]] = []
        self.alert_tests: list[dict[str, Any]] = []

    def counter(self, metric: str, per_step: float, instances: Sequence[str] = INSTANCES, **labels: str) -> None:
        """A counter growing by `per_step` every scrape, on each replica."""
        for instance in instances:
            self.series.append({
                "series": metric + _labels(job=JOB, instance=instance, **labels),
                "values": f"0+{float(per_step)!r}x{self.steps}",
            })

    def gauge(self, metric: str, value: float, instances: Sequence[str] = INSTANCES, **labels: str) -> None:
        for instance in instances:
            self.series.append({
                "series": metric + _labels(job=JOB, instance=instance, **labels),
                "values": f"{float(value)!r}+0x{self.steps}",
            })

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
    """Accuracy, and precision/recall/F1 of `positive`, from a confusion matrix."""
    total = sum(confusion.values())
    out = {"accuracy": sum(v for (a, p), v in confusion.items() if a == p) / total}
    if positive is not None:
        tp = confusion.get((positive, positive), 0.0)
        predicted = sum(v for (_, p), v in confusion.items() if p == positive)
        actual = sum(v for (a, _), v in confusion.items() if a == positive)
        out.update(precision=tp / predicted, recall=tp / actual, f1=2 * tp / (predicted + actual))
    return out


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


def _summed(per_replica: Sequence[Confusion]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for confusion in per_replica:
        for cell, value in confusion.items():
            out[cell] = out.get(cell, 0.0) + value
    return out


def _standard_inputs(case: _Case, profile: ReferenceProfile, class_per_step: Mapping[str, float],
                     feature_counts: Mapping[str, np.ndarray] | None = None,
                     invalid_per_step: float = 0.0, errors_per_step: float = 0.0,
                     slow_bucket: int | None = None, confusion: Sequence[Confusion] | None = None) -> None:
    """Every metric the server exports, for a healthy server unless told otherwise
    (`slow_bucket`: every request answered within that latency bucket, not the 5 ms one)."""
    model = profile.model
    _feedback_inputs(case, profile, confusion or [healthy_confusion(profile, case.settings)] * len(INSTANCES))
    for label, per_step in class_per_step.items():
        case.counter(N.PREDICTIONS.total, per_step, model=model, **{"class": label})
    for c in profile.classes:
        case.gauge(N.PREDICTION_REFERENCE_RATIO.name, c.prior, model=model, **{"class": c.label})
    requests = sum(class_per_step.values())
    case.counter(N.MODEL_PREDICT_SECONDS.count, requests, model=model)
    case.counter(N.INVALID_REQUESTS.total, invalid_per_step, model=model, reason="wrong_type")
    case.counter(N.REQUEST_DURATION.count, requests - errors_per_step,
                 handler=PREDICT_HANDLER, method="POST", status="2xx")
    case.counter(N.REQUEST_DURATION.count, errors_per_step,
                 handler=PREDICT_HANDLER, method="POST", status="5xx")
    fast_bound = LATENCY_BUCKETS[3]  # 5 ms
    for bound in (*LATENCY_BUCKETS, math.inf):
        done = requests if bound >= (fast_bound if slow_bucket is None else LATENCY_BUCKETS[slow_bucket]) else 0.0
        le = "+Inf" if math.isinf(bound) else bound_label(bound)
        case.counter(N.REQUEST_DURATION.bucket, done, handler=PREDICT_HANDLER, method="POST", le=le)
    case.gauge("up", 1.0)
    for feature in profile.features:
        counts = (feature_counts or {}).get(feature.name)
        if counts is None:
            counts = reference_counts(feature.quantile_reference, profile.rows)
        cumulative = np.cumsum(counts)
        for bound, total in zip(QUANTILE_BUCKETS, cumulative):
            case.counter(N.FEATURE_QUANTILE.bucket, float(total), model=model, feature=feature.name, le=bound_label(bound))
        case.counter(N.FEATURE_QUANTILE.bucket, float(cumulative[-1]), model=model, feature=feature.name, le="+Inf")
        case.counter(N.FEATURE_QUANTILE.count, float(cumulative[-1]), model=model, feature=feature.name)
        for bound, share in zip(QUANTILE_BUCKETS, feature.quantile_reference):
            case.gauge(N.FEATURE_QUANTILE_REFERENCE.name, share, model=model, feature=feature.name,
                       **{N.BOUND: bound_label(bound)})


def reference_counts(reference_cdf: Sequence[float], rows: int) -> np.ndarray:
    """Per-bin counts that reproduce the reference shares exactly (they are k/rows)."""
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


def rule_tests(profile: ReferenceProfile, settings: Settings, rule_files: Sequence[str]) -> dict[str, str]:
    """promtool test files (name -> YAML) for the rules that `rules.rule_files` renders.

    The ground-truth cases have a file of their own, evaluated at most once a minute: their
    window is an hour in production, and 5-second evaluations of it would take minutes.
    """
    s = settings
    n = Names.of(s)
    window = max(seconds(s.rate_window), seconds(s.drift_window))
    hold = seconds(s.alert_for)
    # promtool evaluates every rule at every step of every case. Linear counters give the same
    # exact rates sampled every 30 s as every 5 s, so the cases step at a tenth of the
    # shortest window (and a quarter of each `for`), never finer than the scrape interval:
    # a production run then takes seconds, not a minute.
    finest = min(seconds(s.rate_window), seconds(s.drift_window)) / 10, hold / 4, seconds(s.down_for) / 4
    interval = max(seconds(s.scrape_interval), float(int(min(finest))))
    settle = window + 3 * interval  # windows full, start-of-series effects gone
    end = settle + hold + 3 * interval  # and every `for` elapsed
    steps = int(end / interval) + 2
    # Cases that read the (long) quality window sample every minute at most: the same exact
    # rates of linear counters, without evaluating an hour of 5-second samples per rule.
    q_interval = max(interval, seconds(s.quality_window) / 60)
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
    mix = {c.label: c.prior * 40 for c in profile.classes}  # shares exactly as in training
    _standard_inputs(normal, profile, mix)
    total = sum(mix.values())
    for label, per_step in mix.items():
        normal.expect(n.class_ratio, end, {**labels, "class": label}, per_step / total)
        normal.expect(n.class_rate, end, {**labels, "class": label}, 2 * per_step / interval)
    normal.expect(n.model_rate, end, labels, 2 * total / interval)
    live = np.array([mix[c.label] / total for c in profile.classes])
    normal.expect(n.prediction_psi, end, labels, psi(live, [c.prior for c in profile.classes]))
    normal.expect(n.request_rate, end, {"job": JOB}, 2 * total / interval)
    normal.expect(n.error_ratio, end, {"job": JOB}, 0.0)
    normal.expect(n.invalid_ratio, end, labels, 0.0)
    for f in profile.features:
        flabels = {**labels, "feature": f.name}
        normal.expect(n.psi, end, flabels, 0.0)
        normal.expect(n.ks, end, flabels, ks_distance(np.cumsum(reference_counts(f.quantile_reference, profile.rows))
                                                      / profile.rows, f.quantile_reference))
        for bound, share in zip(QUANTILE_BUCKETS, bin_shares(f.quantile_reference)):
            normal.expect(n.reference_share, end, {**flabels, "le": bound_label(bound)}, share)
    # Training's positive share may itself be under a floor set high: then that alert fires
    # on normal traffic too (given enough of it), and every case with this mix says so.
    normal_low: list[tuple[Mapping[str, str], float]] = []
    if (positive is not None and positive.prior < s.positive_rate_floor
            and 2 * 40 * seconds(s.rate_window) / interval >= s.min_samples):
        normal_low = [(labels, positive.prior)]

    def quiet_but_low(case: _Case, at: float, names: Sequence[str]) -> None:
        for name in names:
            if name in by_name:
                case.alert(by_name[name], at, normal_low if name == "ModelLowPositiveRate" else [], url)

    quiet_but_low(normal, end, list(by_name))
    cases.append(normal)

    # Labels as good as the model was in training: quality at its computed values, quiet.
    quality_cases: list[_Case] = []
    healthy = _Case("labels mostly agree with predictions: quality at its computed values, nothing fires", s,
                    q_steps, q_interval)
    _standard_inputs(healthy, profile, mix)
    confusion = healthy_confusion(profile, s)
    for metric, expected in quality_of(confusion, positive.label if positive else None).items():
        healthy.expect(getattr(n, metric), q_end, labels, expected)
    healthy.expect(n.label_coverage, q_end, labels, sum(confusion.values()) / total)
    quiet_but_low(healthy, q_end, [name for name in by_name if name != "ModelServerDown"])
    quality_cases.append(healthy)

    # Concept drift: the same inputs and predictions, but the model is now often wrong. The
    # replicas see different labels; the statistics are those of their summed matrix.
    # Half the floor in all: one replica a little better, the other a little worse.
    wrong_a = confusion_with_accuracy(profile, 0.4 * s.accuracy_floor, scale=10.0)
    wrong_b = confusion_with_accuracy(profile, 0.6 * s.accuracy_floor, scale=10.0, skew=True)
    summed = _summed([wrong_a, wrong_b])
    expected_quality = quality_of(summed, positive.label if positive else None)
    wrong = _Case("labels disagree with predictions: accuracy, precision, recall, F1 of the summed replicas", s, q_steps, q_interval)
    _standard_inputs(wrong, profile, mix, confusion=[wrong_a, wrong_b])
    for metric, expected in expected_quality.items():
        wrong.expect(getattr(n, metric), q_end, labels, expected)
    labels_in_window = sum(summed.values()) * seconds(s.quality_window) / q_interval
    wrong.expect(n.labels_increase, q_end, labels, labels_in_window)
    for cell, per_step in summed.items():
        wrong.expect(n.confusion_rate, q_end, {**labels, "actual": cell[0], "predicted": cell[1]}, per_step / q_interval)
    wrong.alert(by_name["ModelQualityDrop"], hold / 2, [], url)
    wrong.alert(by_name["ModelQualityDrop"], q_end, [(labels, expected_quality["accuracy"])], url)
    quiet_but_low(wrong, q_end, ["ModelFeatureDrift", "ModelPredictionDrift", "ModelLowPositiveRate"])
    quality_cases.append(wrong)

    # The same disagreement on too few labels: the accuracy is noise, nothing fires.
    few = _Case("low accuracy on fewer labels than min_labels does not fire", s, q_steps, q_interval)
    scale = 0.5 * s.min_labels / labels_in_window
    _standard_inputs(few, profile, mix, confusion=[{k: v * scale for k, v in wrong_a.items()},
                                                   {k: v * scale for k, v in wrong_b.items()}])
    few.expect(n.accuracy, q_end, labels, expected_quality["accuracy"])
    few.alert(by_name["ModelQualityDrop"], q_end, [], url)
    quality_cases.append(few)

    if positive is not None:
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
        low.alert(by_name["ModelLowPositiveRate"], hold / 2, [], url)
        low.alert(by_name["ModelLowPositiveRate"], end, [(labels, ratio)], url)
        # The class shares moved too: prediction drift, if past its threshold with enough traffic.
        low_psi = psi(shares, [prior[c.label] for c in profile.classes])
        drifted_too = (low_psi > s.prediction_psi_threshold
                       and 2 * 20 * seconds(s.drift_window) / interval >= s.min_drift_samples)
        low.alert(by_name["ModelPredictionDrift"], end, [(labels, low_psi)] if drifted_too else [], url)
        cases.append(low)

        # The same mix under the traffic guard: nothing fires.
        quiet = _Case(f"'{positive.label}' rate under the floor on too little traffic does not fire", s, steps, interval)
        per_step = 0.25 * min(s.min_samples, s.min_drift_samples) * interval / (2 * window)
        _standard_inputs(quiet, profile, {k: v / 20.0 * per_step for k, v in low_mix.items()})
        quiet.expect(n.positive_ratio, end, labels, ratio)
        quiet.alert(by_name["ModelLowPositiveRate"], end, [], url)
        quiet.alert(by_name["ModelPredictionDrift"], end, [], url)
        cases.append(quiet)

    # Feature drift on the first feature, reference traffic on the others; the two replicas
    # see different data and the statistics must be those of their sum.
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
    drift.alert(by_name["ModelFeatureDrift"], hold / 2, [], url)
    drift.alert(by_name["ModelFeatureDrift"], end, [(flabels, expected_psi)], url)
    cases.append(drift)

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
    broken.alert(by_name["ModelInvalidInputRate"], end, [(labels, invalid_ratio)], url)
    broken.alert(by_name["ModelServerErrors"], end, [({"job": JOB}, error_ratio)], url)
    broken.alert(by_name["ModelHighLatency"], end, [({"job": JOB}, _p_in_bucket(slow, 0.99))], url)
    cases.append(broken)

    # One replica down: fires after down_for, for that replica only.
    down = _Case("a replica that cannot be scraped fires ModelServerDown after its for", s, steps, interval)
    _standard_inputs(down, profile, mix)
    down.series = [x for x in down.series if not x["series"].startswith("up{")]
    down.gauge("up", 0.0, instances=INSTANCES[:1])
    down.gauge("up", 1.0, instances=INSTANCES[1:])
    down.alert(by_name["ModelServerDown"], seconds(s.down_for) / 2, [], url)
    down.alert(by_name["ModelServerDown"], seconds(s.down_for) + 3 * interval,
               [({"job": JOB, "instance": INSTANCES[0]}, 0.0)], url)
    cases.append(down)

    def document(evaluation_interval: str, group: list[_Case]) -> str:
        return dump_yaml({
            "rule_files": list(rule_files),
            "evaluation_interval": evaluation_interval,
            "group_eval_order": list(group_names(profile)),
            "tests": [case.document() for case in group],
        })

    return {"rules_test.yml": document(_duration(interval), cases),
            "quality_test.yml": document(f"{int(q_interval)}s", quality_cases)}

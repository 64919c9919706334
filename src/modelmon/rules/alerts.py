"""Alert rules: each alert's expression, `for`, severity and annotations, judged by the
evidence its window's count gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelmon.contract import alerts as A
from modelmon.contract import names as N
from modelmon.model.reference import ReferenceProfile
from modelmon.rules.promql import either_of, ks_clause, percent, window_branches, windows_clause
from modelmon.rules.series import JOB, SCORING, Names
from modelmon.settings import Settings


@dataclass(frozen=True)
class Alert:
    """One alerting rule; `summary`/`description` use only `$labels.X` and `$value` forms
    that the rule tests can render in Python (see ruletests)."""

    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str
    labels: dict[str, str] = field(default_factory=dict)

    def rule(self, dashboard_url: str) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.duration,
            "labels": {"severity": self.severity, **self.labels},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "dashboard": dashboard_url,
            },
        }


def low_rate_alerted(profile: ReferenceProfile, settings: Settings) -> bool:
    """ModelLowPositiveRate exists where it means something: for a positive class whose share in
    training is above the floor. A fraud model that flags 5 % of payments would page all day
    under the workshop's 20 % floor."""
    positive = profile.positive
    return positive is not None and positive.prior > settings.positive_rate_floor


def dashboard_uid(profile: ReferenceProfile) -> str:
    return f"modelmon-{profile.model}"


def _feature_drift(profile: ReferenceProfile, n: Names, s: Settings, factor: float, ks: bool) -> str:
    """Inputs drifted over the windows of `n`: PSI past `factor` times its threshold and its
    critical value, or (numeric inputs, with `ks`) KS past both of its own. (A critical value
    exists only for a window with enough values: the traffic guard.)"""
    on = "on (model, feature)"
    psi = f"{n.psi} > {factor * s.psi_threshold!r} and {on} {n.psi} > {n.psi_critical}"
    either = (f"\n  or ({n.psi} and {on} {n.ks} > {factor * s.ks_threshold!r} and {on} {n.ks} > {n.ks_critical})"
              if ks and profile.features else "")
    return f"{psi}{either}"


def _prediction_drift(profile: ReferenceProfile, n: Names, s: Settings, factor: float, ks: bool) -> str:
    """Predictions drifted over the windows of `n`: class shares' (or a regressor's predicted
    values') PSI past `factor` times its threshold and its critical value, or (a regressor,
    with `ks`) KS past both of its own."""
    on = "on (model)"
    psi = f"{n.prediction_psi} > {factor * s.prediction_psi_threshold!r} and {on} {n.prediction_psi} > " \
          f"{n.prediction_psi_critical}"
    either = (f"\n  or ({n.prediction_psi} and {on} {n.prediction_ks} > {factor * s.ks_threshold!r} and {on} "
              f"{n.prediction_ks} > {n.prediction_ks_critical})" if ks and profile.regression else "")
    return f"{psi}{either}"


def _estimated_quality_alerts(n: Names, s: Settings) -> list[Alert]:
    """Quality from calibrated probabilities (modelmon.stats.calibration): under the floor with no
    labels needed, and the gap when labels do arrive. No count guards: each weighs a Wilson
    bound, which stays above any floor on too few rows."""
    return [
        Alert(
            A.ESTIMATED_QUALITY_DROP,
            f"{n.estimated_accuracy}\nand on (model) {n.estimated_accuracy_upper} < {s.accuracy_floor}",
            s.alert_for, "warning",
            f"{{{{ $labels.model }}}}: estimated accuracy {{{{ $value | humanizePercentage }}}}, under "
            f"{s.accuracy_floor:.0%}, before any label",
            f"Over the last {s.quality_window}, the calibrated probabilities of model {{{{ $labels.model }}}} put its "
            f"accuracy at {{{{ $value | humanizePercentage }}}} (floor {s.accuracy_floor:.0%}, on enough predictions "
            f"to be evidence at {percent(s.confidence)}): the inputs moved to where the model is unsure. No labels "
            "are needed; it assumes what makes a row positive has not changed (ModelConceptDrift says when it has).",
        ),
        Alert(
            A.CONCEPT_DRIFT,
            f"{n.estimated_accuracy} - {n.accuracy}\n"
            f"and {n.accuracy_upper} < {n.estimated_accuracy} - {s.concept_drift_margin!r}",
            s.alert_for, "warning",
            "{{ $labels.model }}: accuracy on labels {{ $value | humanizePercentage }} under its estimate",
            f"Over the last {s.quality_window}, the labels received for model {{{{ $labels.model }}}} show an "
            f"accuracy {{{{ $value | humanizePercentage }}}} under the one its calibrated probabilities estimate "
            f"(margin {s.concept_drift_margin:.0%}, on enough labels to be evidence at {percent(s.confidence)}): "
            "the inputs may look as in training, but what makes a row positive moved. Retrain on recent labels.",
        ),
    ]


def alerts(profile: ReferenceProfile, settings: Settings) -> list[Alert]:
    """Every alert of a model, in the order the rule file lists them."""
    n, short = Names.of(settings), Names.short_of(settings)
    quality = _regression_alerts if profile.regression else _classification_alerts
    return [*_positive_rate_alerts(profile, settings, n, short), *_input_alerts(profile, settings, n),
            *quality(profile, settings, n), *_service_alerts(profile, settings, n)]


def _positive_rate_alerts(profile: ReferenceProfile, s: Settings, n: Names, short: Names) -> list[Alert]:
    out: list[Alert] = []
    positive = profile.positive
    within = windows_clause(s)
    if positive is not None and low_rate_alerted(profile, s):
        out.append(Alert(
            A.LOW_POSITIVE_RATE,
            # No traffic guard: Wilson's bound holds on few rows (it stays above the floor on
            # fewer than z^2 (1 - floor) / floor, 38 at the defaults, whatever they show).
            either_of(f"{x.positive_ratio}\nand on (model) {x.positive_upper} < {s.positive_rate_floor}"
                    for x in (n, short)),
            s.alert_for, "critical",
            f"{{{{ $labels.model }}}}: '{positive.label}' rate {{{{ $value | humanizePercentage }}}}, "
            f"under {s.positive_rate_floor:.0%}",
            f"{within}, {{{{ $value | humanizePercentage }}}} of the predictions of model {{{{ $labels.model }}}} "
            f"were '{positive.label}': under the floor of {s.positive_rate_floor:.0%} with {percent(s.confidence)} "
            f"confidence (training {positive.prior:.0%}).",
        ))
    return out


def _input_alerts(profile: ReferenceProfile, s: Settings, n: Names) -> list[Alert]:
    out: list[Alert] = []
    if profile.features or profile.categories:
        # Categorical inputs alert on PSI alone: their total variation distance (recorded, on
        # the dashboard) moves with it, and a threshold on both would be two names for one knob.
        out.append(Alert(
            A.FEATURE_DRIFT,
            either_of(_feature_drift(profile, x, s, factor, ks) for x, factor, ks in window_branches(s)),
            s.alert_for, "warning",
            "{{ $labels.model }}: input '{{ $labels.feature }}' drifted (PSI {{ $value | printf \"%.3f\" }})",
            f"{windows_clause(s, drift=True)}, the distribution of '{{{{ $labels.feature }}}}' sent to model "
            f"{{{{ $labels.model }}}} moved away from the training data: PSI {{{{ $value | printf \"%.3f\" }}}} "
            f"(threshold {s.psi_threshold}{ks_clause(profile, s)}), on enough values to be evidence at "
            f"{percent(s.confidence)}.",
        ))
    if profile.nullable:
        out.append(Alert(
            A.FEATURE_MISSING,
            f"{n.missing_share}\nand on (model, feature) (\n"
            f"  abs({n.missing_share} - on (model, feature) {n.missing_reference}) > {s.missing_share_tolerance}\n)\n"
            f"and on (model) {n.model_increase_drift} >= {s.min_drift_samples}",
            s.alert_for, "warning",
            "{{ $labels.model }}: input '{{ $labels.feature }}' missing in {{ $value | humanizePercentage }} of rows",
            f"Over the last {s.drift_window}, '{{{{ $labels.feature }}}}' was missing in {{{{ $value | "
            f"humanizePercentage }}}} of the rows sent to model {{{{ $labels.model }}}}, more than "
            f"{s.missing_share_tolerance:.0%} away from its training share ({N.FEATURE_MISSING_REFERENCE.name}): "
            "an upstream source may have stopped filling it, or started to.",
        ))
    return out


def _regression_alerts(profile: ReferenceProfile, s: Settings, n: Names) -> list[Alert]:
    """Drift of the predicted values; MAE against the training MAE once labels arrive."""
    out: list[Alert] = []
    out.append(Alert(
        A.PREDICTION_DRIFT,
        either_of(_prediction_drift(profile, x, s, factor, ks) for x, factor, ks in window_branches(s)),
        s.alert_for, "warning",
        "{{ $labels.model }}: predicted values drifted (PSI {{ $value | printf \"%.3f\" }})",
        f"{windows_clause(s, drift=True)}, the distribution of the values predicted by model "
        f"{{{{ $labels.model }}}} moved away from its predictions on the training data: PSI "
        f"{{{{ $value | printf \"%.3f\" }}}} (threshold {s.prediction_psi_threshold}; the alert also fires when "
        f"KS exceeds {s.ks_threshold}), on enough predictions to be evidence at {percent(s.confidence)}.",
    ))
    if profile.errors is not None:
        ceiling = s.mae_ratio * profile.errors.mae
        out.append(Alert(
            A.QUALITY_DROP,
            f"{n.mae} > {ceiling!r}\nand on (model) {n.labels_increase} >= {s.min_labels}",
            s.alert_for, "critical",
            f"{{{{ $labels.model }}}}: MAE {{{{ $value | printf \"%.3f\" }}}} on labelled predictions, over "
            f"{s.mae_ratio}x the training MAE",
            f"Over the last {s.quality_window}, the predictions of model {{{{ $labels.model }}}} were off by "
            f"{{{{ $value | printf \"%.3f\" }}}} on average (MAE on at least {s.min_labels} labels), over "
            f"{s.mae_ratio} times its training MAE of {profile.errors.mae:.4g}. The model is wrong by more, "
            "whether or not its inputs drifted.",
        ))
    return out


def _classification_alerts(profile: ReferenceProfile, s: Settings, n: Names) -> list[Alert]:
    """Drift of the predicted classes; accuracy from labels, and estimated quality."""
    out: list[Alert] = []
    out.append(Alert(
        A.PREDICTION_DRIFT,
        either_of(_prediction_drift(profile, x, s, factor, ks) for x, factor, ks in window_branches(s)),
        s.alert_for, "warning",
        "{{ $labels.model }}: predicted classes drifted (PSI {{ $value | printf \"%.3f\" }})",
        f"{windows_clause(s, drift=True)}, the share of each predicted class of model {{{{ $labels.model }}}} "
        f"moved away from its training share: PSI {{{{ $value | printf \"%.3f\" }}}} "
        f"(threshold {s.prediction_psi_threshold}), on enough predictions to be evidence at "
        f"{percent(s.confidence)}.",
    ))
    out.append(Alert(
        A.QUALITY_DROP,
        f"{n.accuracy} < {s.accuracy_floor}\nand on (model) {n.labels_increase} >= {s.min_labels}",
        s.alert_for, "critical",
        f"{{{{ $labels.model }}}}: accuracy {{{{ $value | humanizePercentage }}}} on labelled predictions, "
        f"under {s.accuracy_floor:.0%}",
        f"Over the last {s.quality_window}, the ground truth received for model {{{{ $labels.model }}}} agreed "
        f"with its predictions {{{{ $value | humanizePercentage }}}} of the time (floor {s.accuracy_floor:.0%}, "
        f"at least {s.min_labels} labels). The model is wrong more often, whether or not its inputs drifted.",
    ))
    if profile.probabilities:
        out += _estimated_quality_alerts(n, s)
    return out


def _service_alerts(profile: ReferenceProfile, s: Settings, n: Names) -> list[Alert]:
    """Invalid input, errors, latency and a server that is down: the same for every model."""
    guard = s.min_samples
    model = {"model": profile.model}
    out: list[Alert] = []
    out.append(Alert(
        A.INVALID_INPUT_RATE,
        f"{n.invalid_ratio} > {s.invalid_ratio_threshold}\nand on (model) (\n"
        f"  sum by (model) (increase({N.INVALID_REQUESTS.total}[{s.rate_window}]))\n"
        f"  + sum by (model) (increase({N.MODEL_PREDICT_SECONDS.count}[{s.rate_window}]))\n) >= {guard}",
        s.alert_for, "warning",
        "{{ $labels.model }}: {{ $value | humanizePercentage }} of requests rejected",
        f"Over the last {s.rate_window}, {{{{ $value | humanizePercentage }}}} of the requests to model "
        f"{{{{ $labels.model }}}} were rejected as invalid input (threshold {s.invalid_ratio_threshold:.0%}); "
        f"{N.INVALID_REQUESTS.total} tells the reasons.",
    ))
    predict_total = f'sum by (job) (increase({N.REQUEST_DURATION.count}{{{SCORING}}}[{s.rate_window}]))'
    out.append(Alert(
        A.SERVER_ERRORS,
        f"{n.error_ratio} > {s.error_ratio_threshold}\nand on (job) {predict_total} >= {guard}",
        s.alert_for, "critical",
        f"{profile.model}: {{{{ $value | humanizePercentage }}}} of predictions fail",
        f"Over the last {s.rate_window}, {{{{ $value | humanizePercentage }}}} of the prediction requests of job "
        f"{{{{ $labels.job }}}} answered 5xx (threshold {s.error_ratio_threshold:.0%}).",
        model,
    ))
    out.append(Alert(
        A.HIGH_LATENCY,
        f"{n.latency(99)} > {s.latency_p99_seconds}\nand on (job) {predict_total} >= {guard}",
        s.alert_for, "warning",
        f"{profile.model}: p99 latency {{{{ $value | printf \"%.3f\" }}}} s",
        f"Over the last {s.rate_window}, the 99th percentile of prediction latency of job {{{{ $labels.job }}}} "
        f"was {{{{ $value | printf \"%.3f\" }}}} s (threshold {s.latency_p99_seconds} s).",
        model,
    ))
    out.append(Alert(
        A.SERVER_DOWN,
        f'up{{job="{JOB}"}} == 0',
        s.down_for, "critical",
        f"{profile.model}: model server {{{{ $labels.instance }}}} is down",
        f"Prometheus could not scrape {{{{ $labels.instance }}}} (job {JOB}) for {s.down_for}: the model "
        f"server is down or unreachable.",
        model,
    ))
    return out

"""What the dashboard shows, panel by panel: each panel's title, kind and PromQL queries for a
model's inputs, classes or values, quality and service, read from the series catalogue.
How they are laid out as Grafana JSON: `modelmon.targets.dashboards`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelmon.contract import names as N
from modelmon.model.reference import MAX_CLASSES, ReferenceProfile
from modelmon.rules.alerts import low_rate_alerted
from modelmon.rules.series import LATENCY_QUANTILES, Names
from modelmon.settings import Settings

SELECTOR = 'model="$model"'


INSTANCE_SELECTOR = 'model="$model", instance=~"$instance"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    instant: bool = False


@dataclass(frozen=True)
class PanelSpec:
    """What a panel shows; the SDK builder is made from it, and the report reads it back."""

    row: str
    title: str
    kind: str  # timeseries | bargauge | table
    queries: tuple[Query, ...]
    unit: str = "short"
    threshold: float | None = None  # drawn as a red line (the alert's threshold)
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _window_cdf(histogram: N.Family, selector: str, window: str) -> str:
    """Share of a histogram's observations at or under each bucket, over the window."""
    return (f"sum by (le) (increase({histogram.bucket}{{{selector}}}[{window}]))\n/ ignoring (le) group_left\n"
            f"sum(increase({histogram.count}{{{selector}}}[{window}]))")


def panel_specs(profile: ReferenceProfile, settings: Settings) -> list[PanelSpec]:
    n = Names.of(settings)
    s = settings
    specs: list[PanelSpec] = []
    for f in profile.features:
        feature = f'feature="{f.name}"'
        specs.append(PanelSpec(
            "Data", f"{f.name}: last value", "timeseries",
            (Query(f"{N.FEATURE_LAST_VALUE.name}{{{INSTANCE_SELECTOR}, {feature}}}", "{{instance}}"),),
            description=f"Last value of {f.name} received by each instance (training mean {f.mean:.4g}).",
        ))
        specs.append(PanelSpec(
            "Data", f"{f.name}: distribution over {s.drift_window} vs training", "bargauge",
            (
                Query(_window_cdf(N.FEATURE_VALUE, f"{SELECTOR}, {feature}", s.drift_window),
                      "live <= {{le}}", instant=True),
                Query(f"max by ({N.BOUND}) ({N.FEATURE_VALUE_REFERENCE.name}{{{SELECTOR}, {feature}}})",
                      f"training <= {{{{{N.BOUND}}}}}", instant=True),
            ),
            unit="percentunit", minimum=0, maximum=1,
            description="Share of values at or under each histogram edge: live window against the training data.",
        ))
    specs += _category_specs(profile, settings)
    specs.append(PanelSpec(
        "Data", "Feature drift: PSI", "timeseries",
        (Query(f"{n.psi}{{{SELECTOR}}}", "{{feature}}"),), threshold=s.psi_threshold,
        description=f"Population stability index of each input over {s.drift_window}: numeric inputs from the rank "
                    "histograms, categorical ones from the category shares.",
    ))
    if profile.features:
        specs.append(PanelSpec(
            "Data", "Feature drift: KS distance", "timeseries",
            (Query(f"{n.ks}{{{SELECTOR}}}", "{{feature}}"),), threshold=s.ks_threshold, minimum=0, maximum=1,
            description=f"Kolmogorov-Smirnov distance of each numeric input over {s.drift_window}.",
        ))
    if profile.nullable:
        specs.append(PanelSpec(
            "Data", "Missing inputs: share of rows", "timeseries",
            (Query(f"{n.missing_share}{{{SELECTOR}}}", "{{feature}}"),
             Query(f"{n.missing_reference}{{{SELECTOR}}}", "training {{feature}}")),
            unit="percentunit", minimum=0, maximum=1,
            description=f"Share of rows with each nullable input missing over {s.drift_window}, against training; "
                        f"ModelFeatureMissing fires more than {s.missing_share_tolerance:.0%} away.",
        ))
    specs += _regression_specs(profile, settings) if profile.regression else _class_specs(profile, settings)
    specs += _quality_specs(profile, settings)
    specs += _version_specs(profile, settings)
    specs.append(PanelSpec(
        "Service", "Request rate", "timeseries",
        (Query(
            f"sum by (handler, status) (rate({N.REQUEST_DURATION.count}{{instance=~\"$instance\"}}"
            f"[{s.rate_window}]))",
            "{{handler}} {{status}}",
        ),),
        unit="reqps",
    ))
    specs.append(PanelSpec(
        "Service", "Latency of scoring requests", "timeseries",
        tuple(Query(n.latency(q), f"p{q}") for q in LATENCY_QUANTILES),
        unit="s", threshold=s.latency_p99_seconds,
    ))
    specs.append(PanelSpec(
        "Service", "Invalid requests by reason", "timeseries",
        (Query(f"sum by (reason) (rate({N.INVALID_REQUESTS.total}{{{SELECTOR}}}[{s.rate_window}]))",
               "{{reason}}"),),
        unit="reqps",
    ))
    specs.append(PanelSpec(
        "Alerts", "Firing and pending alerts", "table",
        (Query('ALERTS{model="$model"}', "{{alertname}}", instant=True),),
        description="Alerts of this model as Prometheus evaluates them.",
    ))
    return specs


def _category_specs(profile: ReferenceProfile, settings: Settings) -> list[PanelSpec]:
    """Each categorical input's shares against training, their distance, unseen categories."""
    if not profile.categories:
        return []
    n = Names.of(settings)
    d = settings.drift_window
    out = [
        PanelSpec(
            "Data", f"{c.name}: category shares over {d} vs training", "bargauge",
            (Query(f'{n.category_share}{{{SELECTOR}, feature="{c.name}"}}', "live {{category}}", instant=True),
             Query(f'{n.category_reference}{{{SELECTOR}, feature="{c.name}"}}', "training {{category}}",
                   instant=True)),
            unit="percentunit", minimum=0, maximum=1,
            description=f"Share of each category of {c.name} (at most 30 from training, `other` for the rest and "
                        "for unseen ones): live window against the training data.",
        )
        for c in profile.categories
    ]
    out.append(PanelSpec(
        "Data", "Categorical drift: total variation distance", "timeseries",
        (Query(f"{n.category_distance}{{{SELECTOR}}}", "{{feature}}"),), unit="percentunit", minimum=0, maximum=1,
        description=f"Share of rows that would have to change category to match training, over {d}.",
    ))
    out.append(PanelSpec(
        "Data", "Unseen categories", "timeseries",
        (Query(f"sum by (feature) (rate({N.FEATURE_UNSEEN_CATEGORY.total}{{{SELECTOR}}}[{settings.rate_window}]))",
               "{{feature}}"),), unit="reqps",
        description="Values per second of categorical inputs that training never had (served, counted as `other`).",
    ))
    return out


def _class_specs(profile: ReferenceProfile, settings: Settings) -> list[PanelSpec]:
    """A classifier's predictions: per class, the positive rate and probability, class drift."""
    n = Names.of(settings)
    s = settings
    out: list[PanelSpec] = []
    out.append(PanelSpec(
        "Predictions", "Predictions per class", "timeseries",
        (Query(f"{n.class_rate}{{{SELECTOR}}}", "{{class}}"),), unit="reqps",
        description=f"Predicted rows per second, by class, over {s.rate_window}.",
    ))
    positive = profile.positive
    if positive is not None:
        alerted = low_rate_alerted(profile, s)
        out.append(PanelSpec(
            "Predictions", f"'{positive.label}' rate", "timeseries",
            (
                Query(f"{n.positive_ratio}{{{SELECTOR}}}", f"{positive.label} rate"),
                Query(f'{n.reference_ratio}{{{SELECTOR}, class="{positive.label}"}}', "training"),
            ),
            unit="percentunit", threshold=s.positive_rate_floor if alerted else None, minimum=0, maximum=1,
            description=f"Share of '{positive.label}' predictions over {s.rate_window}; " + (
                f"the alert fires under {s.positive_rate_floor:.0%}." if alerted else
                f"no alert: training's share ({positive.prior:.0%}) is not above the floor "
                f"({s.positive_rate_floor:.0%})."),
        ))
        out.append(PanelSpec(
            "Predictions", f"'{positive.label}' probability distribution", "bargauge",
            (Query(_window_cdf(N.PREDICTION_PROBABILITY, SELECTOR, s.drift_window), "<= {{le}}",
                   instant=True),),
            unit="percentunit", minimum=0, maximum=1,
            description="Cumulative share of predicted probabilities at or under each bucket.",
        ))
    out.append(PanelSpec(
        "Predictions", "Prediction drift: PSI of class shares", "timeseries",
        (Query(f"{n.prediction_psi}{{{SELECTOR}}}", "PSI"),), threshold=s.prediction_psi_threshold,
        description=f"How far the share of each predicted class moved from training, over {s.drift_window}.",
    ))
    return out


def _regression_specs(profile: ReferenceProfile, settings: Settings) -> list[PanelSpec]:
    """A regressor's predictions: their rate, distribution against training, and drift."""
    n = Names.of(settings)
    s = settings
    return [
        PanelSpec(
            "Predictions", "Predictions per second", "timeseries",
            (Query(f"{n.model_rate}{{{SELECTOR}}}", "predictions"),), unit="reqps",
            description=f"Predicted rows per second over {s.rate_window}.",
        ),
        PanelSpec(
            "Predictions", f"Predicted values over {s.drift_window} vs training", "bargauge",
            (Query(_window_cdf(N.PREDICTION_VALUE, SELECTOR, s.drift_window), "live <= {{le}}", instant=True),
             Query(f"max by ({N.BOUND}) ({N.PREDICTION_VALUE_REFERENCE.name}{{{SELECTOR}}})",
                   f"training <= {{{{{N.BOUND}}}}}", instant=True)),
            unit="percentunit", minimum=0, maximum=1,
            description="Share of predicted values at or under each decile of the training predictions.",
        ),
        PanelSpec(
            "Predictions", "Prediction drift: PSI and KS of predicted values", "timeseries",
            (Query(f"{n.prediction_psi}{{{SELECTOR}}}", "PSI"), Query(f"{n.prediction_ks}{{{SELECTOR}}}", "KS")),
            threshold=s.prediction_psi_threshold,
            description=f"How far the distribution of predicted values moved from training, over {s.drift_window}; "
                        f"ModelPredictionDrift fires on PSI over {s.prediction_psi_threshold} or KS over "
                        f"{s.ks_threshold}.",
        ),
    ]


def _quality_specs(profile: ReferenceProfile, settings: Settings) -> list[PanelSpec]:
    """Ground truth: how often the model is right, on the labels that came back."""
    n = Names.of(settings)
    q = settings.quality_window
    return (_error_specs(profile, settings) if profile.regression else _accuracy_specs(profile, settings)) + [
        PanelSpec(
            "Quality", "Label coverage", "timeseries",
            (Query(f"{n.label_coverage}{{{SELECTOR}}}", "labels per prediction"),),
            unit="percentunit", minimum=0,
            description=f"Labels received per prediction made, over {q}: the share of traffic the quality "
                        "panels speak for (late labels make it lag).",
        ),
        PanelSpec(
            "Quality", "Label delay", "timeseries",
            tuple(Query(f"histogram_quantile({p / 100}, sum by (le) "
                        f"(rate({N.FEEDBACK_DELAY.bucket}{{{SELECTOR}}}[{q}])))", f"p{p}")
                  for p in (50, 90)),
            unit="s", description="Time from a prediction to its label (bucket resolution).",
        ),
        PanelSpec(
            "Quality", "Prediction log", "timeseries",
            (Query(f"sum(rate({N.LOG_WRITTEN.total}{{{INSTANCE_SELECTOR}}}[{settings.rate_window}]))",
                   "written"),
             Query(f"sum by (reason) (rate({N.LOG_DROPPED.total}{{{INSTANCE_SELECTOR}}}"
                   f"[{settings.rate_window}]))", "dropped: {{reason}}")),
            description="Predictions written to the log per second, and those dropped (full queue, store errors): "
                        "a dropped prediction cannot take a label.",
        ),
    ]


def _version_specs(profile: ReferenceProfile, settings: Settings) -> list[PanelSpec]:
    """Which version served when, and each version's predictions and quality: a promotion is
    where the served version's line steps, and before/after compare side by side."""
    w, q = settings.rate_window, settings.quality_window
    if profile.regression:
        by = f"sum by ({N.VERSION}) (rate({{}}{{{{{SELECTOR}}}}}[{q}]))"
        quality = (Query(f"{by.format(N.ABSOLUTE_ERROR.sum)}\n/ ({by.format(N.ABSOLUTE_ERROR.count)} > 0)",
                         "MAE, version {{version}}"),)
        what, unit = "mean absolute error", "short"
    else:
        diagonal = " or ".join(f'rate({N.FEEDBACK.total}{{{SELECTOR}, actual="{c.label}", predicted="{c.label}"}}[{q}])'
                               for c in profile.classes[:MAX_CLASSES])
        quality = (Query(f"sum by ({N.VERSION}) ({diagonal})\n/ (sum by ({N.VERSION}) "
                         f"(rate({N.FEEDBACK.total}{{{SELECTOR}}}[{q}])) > 0)", "accuracy, version {{version}}"),)
        what, unit = "accuracy", "percentunit"
    return [
        PanelSpec(
            "Versions", "Model version serving", "timeseries",
            (Query(f"max by ({N.VERSION}, alias) ({N.MODEL_INFO.name}{{{SELECTOR}}})", "version {{version}} {{alias}}"),),
            minimum=0, maximum=1,
            description="1 while a version serves, 0 after the registry alias moved on (serve --follow-alias): "
                        "the step is the promotion.",
        ),
        PanelSpec(
            "Versions", "Predictions by version", "timeseries",
            (Query(f"sum by ({N.VERSION}) (rate({N.PREDICTIONS.total}{{{SELECTOR}}}[{w}]))", "version {{version}}"),),
            unit="reqps", description=f"Predicted rows per second by the version that made them, over {w}.",
        ),
        PanelSpec(
            "Versions", f"Quality by version over {q} (ground truth)", "timeseries", quality, unit=unit,
            description=f"The {what} of each version's own predictions, on the labels received over {q}: a label "
                        "counts for the version that made the prediction, also when it arrives after a switch.",
        ),
    ]


def _error_specs(profile: ReferenceProfile, settings: Settings) -> list[PanelSpec]:
    """A regressor's error on the labels that came back."""
    n = Names.of(settings)
    q = settings.quality_window
    ceiling = settings.mae_ratio * profile.errors.mae if profile.errors is not None else None
    training = f" (training MAE {profile.errors.mae:.4g})" if profile.errors is not None else ""
    return [PanelSpec(
        "Quality", f"Model error over {q} (ground truth)", "timeseries",
        (Query(f"{n.mae}{{{SELECTOR}}}", "MAE"), Query(f"{n.rmse}{{{SELECTOR}}}", "RMSE"),
         Query(f"{n.bias}{{{SELECTOR}}}", "bias")),
        threshold=ceiling,
        description=f"Mean absolute error, root mean squared error and bias (mean of predicted - actual) on the "
                    f"values received over {q} (POST /feedback){training}. ModelQualityDrop fires when MAE "
                    f"exceeds {settings.mae_ratio}x the training MAE with at least {settings.min_labels} labels.",
    )]


def _accuracy_specs(profile: ReferenceProfile, settings: Settings) -> list[PanelSpec]:
    """A classifier's accuracy and confusion matrix on the labels that came back."""
    n = Names.of(settings)
    q = settings.quality_window
    quality = _quality_queries(profile, (n.accuracy, n.precision, n.recall, n.f1))
    return [
        PanelSpec(
            "Quality", f"Model quality over {q} (ground truth)", "timeseries", quality,
            unit="percentunit", threshold=settings.accuracy_floor, minimum=0, maximum=1,
            description=f"Accuracy, and precision/recall/F1 of the positive class, on the labels received over "
                        f"{q} (POST /feedback). ModelQualityDrop fires under {settings.accuracy_floor:.0%} "
                        f"with at least {settings.min_labels} labels.",
        ),
        *(_estimated_specs(profile, settings) if profile.probabilities else []),
        PanelSpec(
            "Quality", f"Confusion matrix over {q}", "bargauge",
            (Query(f"sum by (actual, predicted) (increase({N.FEEDBACK.total}{{{SELECTOR}}}[{q}]))",
                   "actual {{actual}}, predicted {{predicted}}", instant=True),),
            description="Labelled predictions by actual and predicted class.",
        ),
    ]


def _quality_queries(profile: ReferenceProfile, series: tuple[str, str, str, str]) -> tuple[Query, ...]:
    """Accuracy, and the positive class's precision, recall and F1 where there is one."""
    accuracy, precision, recall, f1 = series
    queries = [Query(f"{accuracy}{{{SELECTOR}}}", "accuracy")]
    positive = profile.positive
    if positive is not None:
        queries += [Query(f"{precision}{{{SELECTOR}}}", f"precision ({positive.label})"),
                    Query(f"{recall}{{{SELECTOR}}}", f"recall ({positive.label})"),
                    Query(f"{f1}{{{SELECTOR}}}", f"F1 ({positive.label})")]
    return tuple(queries)


def _estimated_specs(profile: ReferenceProfile, settings: Settings) -> list[PanelSpec]:
    """Quality estimated from calibrated probabilities (no labels), against the labels' own."""
    n = Names.of(settings)
    q = settings.quality_window
    estimated = _quality_queries(profile, (n.estimated_accuracy, n.estimated_precision, n.estimated_recall,
                                           n.estimated_f1))
    return [
        PanelSpec(
            "Quality", f"Estimated vs realized accuracy over {q}", "timeseries",
            (Query(f"{n.estimated_accuracy}{{{SELECTOR}}}", "estimated (calibrated probabilities)"),
             Query(f"{n.accuracy}{{{SELECTOR}}}", "realized (labels)"),
             Query(f"{n.label_coverage}{{{SELECTOR}}}", "label coverage")),
            unit="percentunit", threshold=settings.accuracy_floor, minimum=0, maximum=1,
            description=f"The accuracy the model's calibrated probabilities expect, the accuracy on the labels "
                        f"received, and the share of predictions labelled, over {q}. Apart by more than "
                        f"{settings.concept_drift_margin:.0%}, on enough labels, is ModelConceptDrift: what makes a "
                        "row positive changed. The estimate alone under the floor is ModelEstimatedQualityDrop.",
        ),
        PanelSpec(
            "Quality", f"Estimated quality over {q} (no labels)", "timeseries", estimated,
            unit="percentunit", threshold=settings.accuracy_floor, minimum=0, maximum=1,
            description="Accuracy, and precision/recall/F1 of the positive class, expected from the calibrated "
                        "probabilities of every prediction (confidence-based performance estimation): available "
                        "before any label arrives; it assumes the relation between inputs and truth held.",
        ),
    ]

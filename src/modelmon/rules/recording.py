"""Recording rules: rates, live CDFs, KS/PSI per input, prediction drift, quality from labels and
estimated quality, each summed over replicas so it adds up across them.
"""

from __future__ import annotations

from modelmon.contract import names as N
from modelmon.contract.buckets import QUANTILE_BUCKETS
from modelmon.model.reference import ReferenceProfile
from modelmon.rules.alerts import low_rate_alerted
from modelmon.rules.promql import or_each, psi_expr, quote, rank_bins, wilson_upper
from modelmon.rules.series import LATENCY_QUANTILES, SCORING, Names
from modelmon.settings import Settings
from modelmon.stats.evidence import ks_coefficient, psi_coefficient, z_of


def quality_rules(profile: ReferenceProfile, settings: Settings) -> list[tuple[str, str]]:
    """Quality from labels: accuracy, and precision/recall/F1 of the positive class, from the
    confusion counters; for a regressor MAE, RMSE and bias from its error sums.

    Each sum is taken over instances first; a denominator of zero gives no sample rather
    than NaN, so panels show a gap and alerts stay quiet until labels arrive.
    """
    n = Names.of(settings)
    q = settings.quality_window
    if profile.regression:
        labelled = f"sum by (model) (rate({N.ABSOLUTE_ERROR.count}[{q}]))"
        signed = {d: f'sum by (model) (rate({N.SIGNED_ERROR.total}{{direction="{d}"}}[{q}]))'
                  for d in N.ERROR_DIRECTIONS}
        return [
            (n.labels_increase, f"sum by (model) (increase({N.ABSOLUTE_ERROR.count}[{q}]))"),
            (n.mae, f"sum by (model) (rate({N.ABSOLUTE_ERROR.sum}[{q}]))\n/ ({labelled} > 0)"),
            (n.rmse, f"sqrt(\n  sum by (model) (rate({N.SQUARED_ERROR.total}[{q}]))\n  / ({labelled} > 0)\n)"),
            (n.bias, f"(\n  {signed['over']}\n  - {signed['under']}\n)\n/ ({labelled} > 0)"),
            (n.label_coverage, f"{labelled}\n/ (sum by (model) (rate({N.PREDICTIONS.total}[{q}])) > 0)"),
        ]
    z = z_of(settings.confidence)
    rules = [
        (n.confusion_rate, f"sum by (model, actual, predicted) (rate({N.FEEDBACK.total}[{q}]))"),
        (n.labels_increase, f"sum by (model) (increase({N.FEEDBACK.total}[{q}]))"),
        *_confusion_quality(profile, n.confusion_rate, (n.accuracy, n.precision, n.recall, n.f1)),
        (n.label_coverage, f"sum by (model) ({n.confusion_rate})\n/ (sum by (model) (rate({N.PREDICTIONS.total}[{q}])) > 0)"),
    ]
    if profile.probabilities:
        rules += [
            (n.accuracy_upper, wilson_upper(n.accuracy, n.labels_increase, z)),
            (n.expected_confusion_rate, f"sum by (model, actual, predicted) (rate({N.EXPECTED_CONFUSION.total}[{q}]))"),
            (n.expected_increase, f"sum by (model) (increase({N.EXPECTED_CONFUSION.total}[{q}]))"),
            *_confusion_quality(profile, n.expected_confusion_rate, (n.estimated_accuracy, n.estimated_precision,
                                                                     n.estimated_recall, n.estimated_f1)),
            (n.estimated_accuracy_upper, wilson_upper(n.estimated_accuracy, n.expected_increase, z)),
        ]
    return rules


def _confusion_quality(profile: ReferenceProfile, cell: str, names: tuple[str, str, str, str]) -> list[tuple[str, str]]:
    """Accuracy, and the positive class's precision, recall and F1, of a recorded confusion
    matrix: from labels, or expected from calibrated probabilities (modelmon.stats.calibration.quality_of)."""
    accuracy, precision, recall, f1 = names
    diagonal = "\n  or ".join(f"{cell}{{actual={quote(c.label)}, predicted={quote(c.label)}}}" for c in profile.classes)
    rules = [(accuracy, f"sum by (model) (\n  {diagonal}\n)\n/ (sum by (model) ({cell}) > 0)")]
    positive = profile.positive
    if positive is not None:
        p = quote(positive.label)
        tp = f"sum by (model) ({cell}{{actual={p}, predicted={p}}})"
        predicted = f"sum by (model) ({cell}{{predicted={p}}})"
        actual = f"sum by (model) ({cell}{{actual={p}}})"
        rules += [
            (precision, f"{tp}\n/ ({predicted} > 0)"),
            (recall, f"{tp}\n/ ({actual} > 0)"),
            (f1, f"2 * {tp}\n/ (({predicted} + {actual}) > 0)"),
        ]
    return rules


def _rank_drift_rules(histogram: N.Family, reference: N.Family, by: str, window: str,
                      names: tuple[str, str, str, str, str, str]) -> list[tuple[str, str]]:
    """KS and PSI of a rank histogram against its exported no-drift CDF, per `by`: the live
    CDF from the summed buckets (increases, not rates, as every share of the drift window:
    the same ratio in PromQL, and exact counts in vmalert's MetricsQL, whose rate divides each
    replica's increase by that series' own sample span, so shares summed over replicas would
    be weighted slightly unevenly; docs/SCALING.md), the reference recorded with `le` (exported with `bound`,
    as `le` is reserved for buckets) so the two join point for point."""
    live_cdf, reference_cdf, ks, live_share, reference_share, psi = names
    on = f"{by}, le"
    return [
        (live_cdf, f'sum by ({on}) (increase({histogram.bucket}{{le!="+Inf"}}[{window}]))\n'
                   f"/ ignoring (le) group_left\nsum by ({by}) (increase({histogram.count}[{window}]))"),
        (reference_cdf, f'max by ({on}) (label_replace({reference.name}, "le", "$1", "{N.BOUND}", "(.*)"))'),
        (ks, f"max by ({by}) (abs({live_cdf} - on ({on}) {reference_cdf}))"),
        (live_share, rank_bins(live_cdf)),
        (reference_share, rank_bins(reference_cdf)),
        (psi, psi_expr(live_share, reference_share, by, on)),
    ]


def _input_rules(profile: ReferenceProfile, n: Names) -> list[tuple[str, str]]:
    """Drift of numeric inputs (rank histograms) and categorical ones (category shares) over
    the drift window of `n`."""
    d = n.d
    rules: list[tuple[str, str]] = []
    if profile.features:
        rules += _rank_drift_rules(N.FEATURE_QUANTILE, N.FEATURE_QUANTILE_REFERENCE, "model, feature", d,
                                   (n.live_cdf, n.reference_cdf, n.ks, n.live_share, n.reference_share, n.psi))
        rules.append((n.feature_increase, f"sum by (model, feature) (increase({N.FEATURE_QUANTILE.count}[{d}]))"))
    if profile.categories:
        by = "model, feature, category"
        rules += [
            (n.category_share, f"sum by ({by}) (increase({N.FEATURE_CATEGORY.total}[{d}]))\n"
                               f"/ ignoring (category) group_left ()\n"
                               f"(sum by (model, feature) (increase({N.FEATURE_CATEGORY.total}[{d}])) > 0)"),
            (n.category_reference, f"max by ({by}) ({N.FEATURE_CATEGORY_REFERENCE.name})"),
            # The same PSI series as the numeric inputs', so one alert and one panel serve both.
            (n.psi, psi_expr(n.category_share, n.category_reference, "model, feature", by)),
            (n.category_distance, f"0.5 * sum by (model, feature) (abs({n.category_share} - on ({by}) "
                                  f"{n.category_reference}))"),
            (n.feature_increase, f"sum by (model, feature) (increase({N.FEATURE_CATEGORY.total}[{d}]))"),
        ]
    return rules


def _missing_rules(profile: ReferenceProfile, settings: Settings) -> list[tuple[str, str]]:
    """The share of rows with each nullable input missing."""
    n = Names.of(settings)
    d = settings.drift_window
    rules: list[tuple[str, str]] = []
    if profile.nullable:
        rules += [
            (n.missing_share, f"sum by (model, feature) (increase({N.FEATURE_MISSING.total}[{d}]))\n"
                              f"/ on (model) group_left ()\n"
                              f"(sum by (model) (increase({N.PREDICTIONS.total}[{d}])) > 0)"),
            (n.missing_reference, f"max by (model, feature) ({N.FEATURE_MISSING_REFERENCE.name})"),
        ]
    return rules


def _prediction_rules(profile: ReferenceProfile, n: Names) -> list[tuple[str, str]]:
    """Predicted rows, and what was predicted: class shares (classifiers) or the rank
    histogram of the predicted values (regressors), with their drift from training, over
    the rate and drift windows of `n`."""
    w, d = n.w, n.d
    rules = [
        (n.model_rate, f"sum by (model) (rate({N.PREDICTIONS.total}[{w}]))"),
        (n.model_increase, f"sum by (model) (increase({N.PREDICTIONS.total}[{w}]))"),
    ]
    if d != w:
        rules.append((n.model_increase_drift, f"sum by (model) (increase({N.PREDICTIONS.total}[{d}]))"))
    if profile.regression:
        return rules + _rank_drift_rules(
            N.PREDICTION_QUANTILE, N.PREDICTION_QUANTILE_REFERENCE, "model", d,
            (n.prediction_cdf, n.prediction_reference_cdf, n.prediction_ks, n.prediction_share,
             n.prediction_reference_share, n.prediction_psi))
    rules += [
        (n.class_rate, f"sum by (model, class) (rate({N.PREDICTIONS.total}[{w}]))"),
        (n.class_ratio, f"{n.class_rate}\n/ ignoring (class) group_left\n{n.model_rate}"),
    ]
    positive = profile.positive
    if positive is not None:
        rules.append((n.positive_ratio, f'sum by (model) ({n.class_ratio}{{class="{positive.label}"}})'))
    if d != w:
        rules.append((
            n.class_ratio_drift,
            f"sum by (model, class) (increase({N.PREDICTIONS.total}[{d}]))\n/ ignoring (class) group_left\n"
            f"sum by (model) (increase({N.PREDICTIONS.total}[{d}]))",
        ))
    rules.append((n.reference_ratio, f"max by (model, class) ({N.PREDICTION_REFERENCE_RATIO.name})"))
    rules.append((n.prediction_psi, psi_expr(n.class_ratio_drift, n.reference_ratio, "model", "model, class")))
    return rules


def _service_rules(settings: Settings) -> list[tuple[str, str]]:
    """Requests, errors, invalid input and latency."""
    n = Names.of(settings)
    w = settings.rate_window
    rules = [
        (n.request_rate, f"sum by (job) (rate({N.REQUEST_DURATION.count}{{{SCORING}}}[{w}]))"),
        (
            n.error_ratio,
            f'sum by (job) (rate({N.REQUEST_DURATION.count}{{{SCORING}, status="5xx"}}[{w}]))\n'
            f"/ {n.request_rate}",
        ),
        (
            n.invalid_ratio,
            f"sum by (model) (rate({N.INVALID_REQUESTS.total}[{w}]))\n/ (\n"
            f"  sum by (model) (rate({N.INVALID_REQUESTS.total}[{w}]))\n"
            f"  + sum by (model) (rate({N.MODEL_PREDICT_SECONDS.count}[{w}]))\n)",
        ),
    ]
    return rules + [
        (
            n.latency(q),
            f"histogram_quantile({q / 100}, sum by (job, le) "
            f"(rate({N.REQUEST_DURATION.bucket}{{{SCORING}}}[{w}])))",
        )
        for q in LATENCY_QUANTILES
    ]


def _evidence_rules(profile: ReferenceProfile, settings: Settings, n: Names, ks: bool) -> list[tuple[str, str]]:
    """What a window's count makes evidence (modelmon.stats.evidence): the positive share's upper
    bound, and the KS and PSI critical values of each input and of the predictions for the
    count over the windows of `n` against the training count. A PSI critical value exists only
    where the window holds `min_per_bin` values per bin: that is the drift alerts' guard."""
    confidence = settings.confidence
    rules: list[tuple[str, str]] = []
    if low_rate_alerted(profile, settings):
        rules.append((n.positive_upper, wilson_upper(n.positive_ratio, n.model_increase, z_of(confidence))))
    c = ks_coefficient(confidence)
    bins = len(QUANTILE_BUCKETS)

    def count(series: str, outcomes: int) -> str:
        return f"({series} >= {settings.min_per_bin * outcomes})"

    def feature(name: str) -> str:
        return f"{n.feature_increase}{{feature={quote(name)}}}"

    if profile.features and ks:
        # KS needs no count per bin: its asymptotic critical value errs on the safe side for
        # small samples.
        rules.append((n.ks_critical, or_each(f"{c!r} * sqrt(1 / {feature(f.name)} + 1 / {max(f.count, 1)})"
                                              for f in profile.features)))
    inputs = [(f.name, f.count, bins) for f in profile.features]
    inputs += [(c.name, c.count, len(c.values) + 1) for c in profile.categories]
    if inputs:
        rules.append((n.psi_critical, or_each(f"{psi_coefficient(b, confidence)!r} * (1 / {count(feature(name), b)} "
                                               f"+ 1 / {max(m, 1)})" for name, m, b in inputs)))
    outcomes = bins if profile.regression else len(profile.classes)
    rows = max(profile.rows, 1)
    predicted = count(n.model_increase_drift, outcomes)
    rules.append((n.prediction_psi_critical, f"{psi_coefficient(outcomes, confidence)!r} * (1 / {predicted} + 1 / "
                                             f"{rows})"))
    if profile.regression and ks:
        rules.append((n.prediction_ks_critical, f"{c!r} * sqrt(1 / {n.model_increase_drift} + 1 / {rows})"))
    return rules


def recording_rules(profile: ReferenceProfile, settings: Settings) -> list[dict[str, str]]:
    """Every recorded series: rates, drift and quality over the settings' windows, the fast
    branch's rates and drift over `short_window`, and the evidence of both."""
    n, short = Names.of(settings), Names.short_of(settings)
    fast = [(name, expr) for name, expr in _prediction_rules(profile, short) + _input_rules(profile, short)
            if name not in (short.ks, short.prediction_ks)]  # the fast branch weighs PSI alone
    rules = (_prediction_rules(profile, n) + _service_rules(settings) + _input_rules(profile, n)
             + _missing_rules(profile, settings) + quality_rules(profile, settings) + fast
             + _evidence_rules(profile, settings, n, ks=True) + _evidence_rules(profile, settings, short, ks=False))
    # The reference series carry no window: recorded once.
    return [{"record": name, "expr": expr} for name, expr in dict.fromkeys(rules)]

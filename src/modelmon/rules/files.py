"""Prometheus recording and alerting rules, generated from the profile and the settings.

Every ratio and drift statistic is computed from counters summed over instances *before*
dividing, so N replicas or workers give the same answer as one. Recorded series follow
`level:metric:operation`; `Names` is the one place their names are spelt, for the rules,
their tests and the dashboards alike.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from modelmon.contract import alerts as A
from modelmon.contract import names as N
from modelmon.contract.buckets import QUANTILE_BUCKETS
from modelmon.contract.names import bound_label
from modelmon.model.profile import ReferenceProfile
from modelmon.settings import Settings, seconds
from modelmon.stats.drift import PSI_EPSILON
from modelmon.stats.evidence import ks_coefficient, psi_coefficient, z_of

JOB = "modelmon"
# Requests that score rows, whichever protocol they came by.
SCORING = f'handler=~"{"|".join(N.SCORING_ROUTES)}"'


@dataclass(frozen=True)
class Names:
    """Recorded series names for the windows: rate W, drift D, quality Q (ground truth)."""

    w: str
    d: str
    q: str

    @classmethod
    def of(cls, settings: Settings) -> Names:
        return cls(settings.rate_window, settings.drift_window, settings.quality_window)

    @classmethod
    def short_of(cls, settings: Settings) -> Names:
        """The fast branch's series: the same names over `short_window`."""
        return cls(settings.short_window, settings.short_window, settings.quality_window)

    @classmethod
    def windows_of(cls, recorded: Iterable[str]) -> dict[str, str]:
        """The windows (`rate_window`, `drift_window`, `quality_window`, `short_window`) that
        recorded series names carry, read back through the same templates that spell them;
        the fast branch's series carry the shortest window."""
        probe = cls("\x00w", "\x00d", "\x00q")
        found: dict[str, set[str]] = {}
        for setting, name, mark in (("rate_window", probe.model_rate, "\x00w"), ("drift_window", probe.psi, "\x00d"),
                                    ("quality_window", probe.labels_increase, "\x00q")):
            pattern = re.compile(re.escape(name).replace(re.escape(mark), r"(\d+(?:ms|s|m|h|d))") + "$")
            for series in recorded:
                match = pattern.match(series)
                if match:
                    found.setdefault(setting, set()).add(match.group(1))
        windows = {setting: max(values, key=seconds) for setting, values in found.items()}
        shortest = {min(values, key=seconds) for values in found.values() if len(values) > 1}
        if len(shortest) == 1:
            windows["short_window"] = shortest.pop()
        return windows

    # predictions
    @property
    def positive_upper(self) -> str:
        """The positive share's upper confidence bound for the window's count."""
        return f"model:modelmon_positive_class:upper_bound_rate{self.w}"

    @property
    def class_rate(self) -> str:
        return f"model_class:{N.PREDICTIONS.name}:rate{self.w}"

    @property
    def model_rate(self) -> str:
        return f"model:{N.PREDICTIONS.name}:rate{self.w}"

    @property
    def model_increase(self) -> str:
        return f"model:{N.PREDICTIONS.name}:increase{self.w}"

    @property
    def class_ratio(self) -> str:
        return f"model_class:{N.PREDICTIONS.name}:ratio_rate{self.w}"

    @property
    def positive_ratio(self) -> str:
        return f"model:modelmon_positive_class:ratio_rate{self.w}"

    @property
    def class_ratio_drift(self) -> str:
        return f"model_class:{N.PREDICTIONS.name}:ratio_rate{self.d}"

    @property
    def model_increase_drift(self) -> str:
        return f"model:{N.PREDICTIONS.name}:increase{self.d}"

    reference_ratio = f"model_class:{N.PREDICTION_REFERENCE_RATIO.name}:max"

    @property
    def prediction_psi(self) -> str:
        return f"model:modelmon_prediction_psi:{self.d}"

    @property
    def prediction_psi_critical(self) -> str:
        return f"model:modelmon_prediction_psi:critical{self.d}"

    # service
    @property
    def request_rate(self) -> str:
        return f"job:modelmon_requests:rate{self.w}"

    @property
    def error_ratio(self) -> str:
        return f"job:modelmon_request_errors:ratio_rate{self.w}"

    @property
    def invalid_ratio(self) -> str:
        return f"model:{N.INVALID_REQUESTS.name}:ratio_rate{self.w}"

    def latency(self, quantile: int) -> str:
        return f"job:{N.REQUEST_DURATION.name}:p{quantile}_rate{self.w}"

    # features
    @property
    def live_cdf(self) -> str:
        return f"model_feature_le:{N.FEATURE_QUANTILE.name}:cdf{self.d}"

    reference_cdf = f"model_feature_le:{N.FEATURE_QUANTILE_REFERENCE.name}:max"

    @property
    def live_share(self) -> str:
        return f"model_feature_le:{N.FEATURE_QUANTILE.name}:share{self.d}"

    reference_share = f"model_feature_le:{N.FEATURE_QUANTILE_REFERENCE.name}:share"

    @property
    def ks(self) -> str:
        return f"model_feature:modelmon_feature_ks:{self.d}"

    @property
    def psi(self) -> str:
        return f"model_feature:modelmon_feature_psi:{self.d}"

    @property
    def ks_critical(self) -> str:
        """The KS distance the window's count must pass to be evidence (modelmon.stats.evidence)."""
        return f"model_feature:modelmon_feature_ks:critical{self.d}"

    @property
    def psi_critical(self) -> str:
        return f"model_feature:modelmon_feature_psi:critical{self.d}"

    @property
    def feature_increase(self) -> str:
        """Values of each input in the drift window (numeric: present values; categorical: any)."""
        return f"model_feature:modelmon_feature_values:increase{self.d}"

    # categorical inputs
    @property
    def category_share(self) -> str:
        return f"model_feature_category:{N.FEATURE_CATEGORY.name}:ratio_rate{self.d}"

    category_reference = f"model_feature_category:{N.FEATURE_CATEGORY_REFERENCE.name}:max"

    @property
    def category_distance(self) -> str:
        """Total variation distance between live and training category shares."""
        return f"model_feature:modelmon_feature_category_distance:{self.d}"

    # missing inputs
    @property
    def missing_share(self) -> str:
        return f"model_feature:{N.FEATURE_MISSING.name}:ratio_rate{self.d}"

    missing_reference = f"model_feature:{N.FEATURE_MISSING_REFERENCE.name}:max"

    # a regressor's predicted values
    @property
    def prediction_cdf(self) -> str:
        return f"model_le:{N.PREDICTION_QUANTILE.name}:cdf{self.d}"

    prediction_reference_cdf = f"model_le:{N.PREDICTION_QUANTILE_REFERENCE.name}:max"

    @property
    def prediction_share(self) -> str:
        return f"model_le:{N.PREDICTION_QUANTILE.name}:share{self.d}"

    prediction_reference_share = f"model_le:{N.PREDICTION_QUANTILE_REFERENCE.name}:share"

    @property
    def prediction_ks(self) -> str:
        return f"model:modelmon_prediction_ks:{self.d}"

    @property
    def prediction_ks_critical(self) -> str:
        return f"model:modelmon_prediction_ks:critical{self.d}"

    # ground truth
    @property
    def confusion_rate(self) -> str:
        return f"model_actual_predicted:{N.FEEDBACK.name}:rate{self.q}"

    @property
    def labels_increase(self) -> str:
        return f"model:{N.FEEDBACK.name}:increase{self.q}"

    @property
    def accuracy(self) -> str:
        return f"model:modelmon_accuracy:ratio_rate{self.q}"

    @property
    def precision(self) -> str:
        return f"model:modelmon_precision:ratio_rate{self.q}"

    @property
    def recall(self) -> str:
        return f"model:modelmon_recall:ratio_rate{self.q}"

    @property
    def f1(self) -> str:
        return f"model:modelmon_f1:ratio_rate{self.q}"

    @property
    def label_coverage(self) -> str:
        return f"model:modelmon_label_coverage:ratio_rate{self.q}"

    @property
    def accuracy_upper(self) -> str:
        """The realized accuracy's upper confidence bound for the labels' count."""
        return f"model:modelmon_accuracy:upper_bound_rate{self.q}"

    # estimated quality (calibrated expected confusion, no labels)
    @property
    def expected_confusion_rate(self) -> str:
        return f"model_actual_predicted:{N.EXPECTED_CONFUSION.name}:rate{self.q}"

    @property
    def expected_increase(self) -> str:
        """Rows whose quality is estimated over the quality window."""
        return f"model:{N.EXPECTED_CONFUSION.name}:increase{self.q}"

    @property
    def estimated_accuracy(self) -> str:
        return f"model:modelmon_estimated_accuracy:ratio_rate{self.q}"

    @property
    def estimated_accuracy_upper(self) -> str:
        """The estimated accuracy's upper confidence bound for the rows' count."""
        return f"model:modelmon_estimated_accuracy:upper_bound_rate{self.q}"

    @property
    def estimated_precision(self) -> str:
        return f"model:modelmon_estimated_precision:ratio_rate{self.q}"

    @property
    def estimated_recall(self) -> str:
        return f"model:modelmon_estimated_recall:ratio_rate{self.q}"

    @property
    def estimated_f1(self) -> str:
        return f"model:modelmon_estimated_f1:ratio_rate{self.q}"

    @property
    def mae(self) -> str:
        return f"model:modelmon_mae:ratio_rate{self.q}"

    @property
    def rmse(self) -> str:
        return f"model:modelmon_rmse:ratio_rate{self.q}"

    @property
    def bias(self) -> str:
        return f"model:modelmon_bias:ratio_rate{self.q}"


LATENCY_QUANTILES = (50, 95, 99)


def _bins(cdf: str) -> str:
    """Bin shares from a CDF recorded per `le`: each bin labelled by its upper bound.

    `group_left` keeps the left side's `le`; a plain one-to-one `ignoring (le)` would drop it.
    """
    les = [bound_label(b) for b in QUANTILE_BUCKETS]
    parts = [f'{cdf}{{le="{les[0]}"}}']
    parts += [f'({cdf}{{le="{hi}"}} - ignoring (le) group_left {cdf}{{le="{lo}"}})' for lo, hi in itertools.pairwise(les)]
    return "\n  or ".join(parts)


def _psi(live: str, reference: str, by: str, on: str) -> str:
    eps = repr(PSI_EPSILON)
    return (
        f"sum by ({by}) (\n"
        f"  ({live} - on ({on}) {reference})\n"
        f"  * on ({on}) ln(({live} + {eps}) / on ({on}) ({reference} + {eps}))\n"
        f")"
    )


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
            (n.accuracy_upper, _wilson_upper(n.accuracy, n.labels_increase, z)),
            (n.expected_confusion_rate, f"sum by (model, actual, predicted) (rate({N.EXPECTED_CONFUSION.total}[{q}]))"),
            (n.expected_increase, f"sum by (model) (increase({N.EXPECTED_CONFUSION.total}[{q}]))"),
            *_confusion_quality(profile, n.expected_confusion_rate, (n.estimated_accuracy, n.estimated_precision,
                                                                     n.estimated_recall, n.estimated_f1)),
            (n.estimated_accuracy_upper, _wilson_upper(n.estimated_accuracy, n.expected_increase, z)),
        ]
    return rules


def _confusion_quality(profile: ReferenceProfile, cell: str, names: tuple[str, str, str, str]) -> list[tuple[str, str]]:
    """Accuracy, and the positive class's precision, recall and F1, of a recorded confusion
    matrix: from labels, or expected from calibrated probabilities (modelmon.stats.calibration.quality_of)."""
    accuracy, precision, recall, f1 = names
    diagonal = "\n  or ".join(f"{cell}{{actual={_quote(c.label)}, predicted={_quote(c.label)}}}" for c in profile.classes)
    rules = [(accuracy, f"sum by (model) (\n  {diagonal}\n)\n/ (sum by (model) ({cell}) > 0)")]
    positive = profile.positive
    if positive is not None:
        p = _quote(positive.label)
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
        (live_share, _bins(live_cdf)),
        (reference_share, _bins(reference_cdf)),
        (psi, _psi(live_share, reference_share, by, on)),
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
            (n.psi, _psi(n.category_share, n.category_reference, "model, feature", by)),
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
    rules.append((n.prediction_psi, _psi(n.class_ratio_drift, n.reference_ratio, "model", "model, class")))
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


def _or_each(terms: Iterable[str]) -> str:
    return "\n  or ".join(terms)


def _wilson_upper(share: str, count: str, z: float) -> str:
    """The upper Wilson score bound of `share` observed on `count` rows (modelmon.stats.evidence)."""
    z2 = z * z
    return (f"(\n  {share} + {z2 / 2!r} / {count}\n"
            f"  + {z!r} * sqrt({share} * (1 - {share}) / {count} + {z2 / 4!r} / {count} ^ 2)\n"
            f")\n/ (1 + {z2!r} / {count})")


def _evidence_rules(profile: ReferenceProfile, settings: Settings, n: Names, ks: bool) -> list[tuple[str, str]]:
    """What a window's count makes evidence (modelmon.stats.evidence): the positive share's upper
    bound, and the KS and PSI critical values of each input and of the predictions for the
    count over the windows of `n` against the training count. A PSI critical value exists only
    where the window holds `min_per_bin` values per bin: that is the drift alerts' guard."""
    confidence = settings.confidence
    rules: list[tuple[str, str]] = []
    if low_rate_alerted(profile, settings):
        rules.append((n.positive_upper, _wilson_upper(n.positive_ratio, n.model_increase, z_of(confidence))))
    c = ks_coefficient(confidence)
    bins = len(QUANTILE_BUCKETS)

    def count(series: str, outcomes: int) -> str:
        return f"({series} >= {settings.min_per_bin * outcomes})"

    def feature(name: str) -> str:
        return f"{n.feature_increase}{{feature={_quote(name)}}}"

    if profile.features and ks:
        # KS needs no count per bin: its asymptotic critical value errs on the safe side for
        # small samples.
        rules.append((n.ks_critical, _or_each(f"{c!r} * sqrt(1 / {feature(f.name)} + 1 / {max(f.count, 1)})"
                                              for f in profile.features)))
    inputs = [(f.name, f.count, bins) for f in profile.features]
    inputs += [(c.name, c.count, len(c.values) + 1) for c in profile.categories]
    if inputs:
        rules.append((n.psi_critical, _or_each(f"{psi_coefficient(b, confidence)!r} * (1 / {count(feature(name), b)} "
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


def _either(branches: Iterable[str]) -> str:
    """The long-window branch `or` the fast one, each in its own parentheses."""
    return "\nor\n".join(f"(\n{textwrap.indent(branch, '  ')}\n)" for branch in branches)


def _percent(share: float) -> str:
    """99.99 % as `99.99%`, not rounded up to 100."""
    return f"{share * 100:.10g}%"


def _windows_clause(s: Settings, drift: bool = False) -> str:
    return (f"Over the last {s.drift_window if drift else s.rate_window} (or, for an abrupt change, the last "
            f"{s.short_window})")


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


# The long-window branch weighs PSI and KS; the fast one PSI alone: a change abrupt and large
# enough to page within a short window moves whole bins (PSI), while a shift across
# neighbouring bins that only KS sees is the subtle kind the long window is for.
def _branches(settings: Settings) -> tuple[tuple[Names, float, bool], tuple[Names, float, bool]]:
    return (Names.of(settings), 1.0, True), (Names.short_of(settings), settings.short_factor, False)


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
            f"to be evidence at {_percent(s.confidence)}): the inputs moved to where the model is unsure. No labels "
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
            f"(margin {s.concept_drift_margin:.0%}, on enough labels to be evidence at {_percent(s.confidence)}): "
            "the inputs may look as in training, but what makes a row positive moved. Retrain on recent labels.",
        ),
    ]


def alerts(profile: ReferenceProfile, settings: Settings) -> list[Alert]:
    n, short = Names.of(settings), Names.short_of(settings)
    s = settings
    guard = s.min_samples
    model = {"model": profile.model}
    out: list[Alert] = []
    positive = profile.positive
    within = _windows_clause(s)
    if positive is not None and low_rate_alerted(profile, s):
        out.append(Alert(
            A.LOW_POSITIVE_RATE,
            # No traffic guard: Wilson's bound holds on few rows (it stays above the floor on
            # fewer than z^2 (1 - floor) / floor, 38 at the defaults, whatever they show).
            _either(f"{x.positive_ratio}\nand on (model) {x.positive_upper} < {s.positive_rate_floor}"
                    for x in (n, short)),
            s.alert_for, "critical",
            f"{{{{ $labels.model }}}}: '{positive.label}' rate {{{{ $value | humanizePercentage }}}}, "
            f"under {s.positive_rate_floor:.0%}",
            f"{within}, {{{{ $value | humanizePercentage }}}} of the predictions of model {{{{ $labels.model }}}} "
            f"were '{positive.label}': under the floor of {s.positive_rate_floor:.0%} with {_percent(s.confidence)} "
            f"confidence (training {positive.prior:.0%}).",
        ))
    if profile.features or profile.categories:
        # Categorical inputs alert on PSI alone: their total variation distance (recorded, on
        # the dashboard) moves with it, and a threshold on both would be two names for one knob.
        out.append(Alert(
            A.FEATURE_DRIFT,
            _either(_feature_drift(profile, x, s, factor, ks) for x, factor, ks in _branches(s)),
            s.alert_for, "warning",
            "{{ $labels.model }}: input '{{ $labels.feature }}' drifted (PSI {{ $value | printf \"%.3f\" }})",
            f"{_windows_clause(s, drift=True)}, the distribution of '{{{{ $labels.feature }}}}' sent to model "
            f"{{{{ $labels.model }}}} moved away from the training data: PSI {{{{ $value | printf \"%.3f\" }}}} "
            f"(threshold {s.psi_threshold}{_ks_clause(profile, s)}), on enough values to be evidence at "
            f"{_percent(s.confidence)}.",
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
    if profile.regression:
        out.append(Alert(
            A.PREDICTION_DRIFT,
            _either(_prediction_drift(profile, x, s, factor, ks) for x, factor, ks in _branches(s)),
            s.alert_for, "warning",
            "{{ $labels.model }}: predicted values drifted (PSI {{ $value | printf \"%.3f\" }})",
            f"{_windows_clause(s, drift=True)}, the distribution of the values predicted by model "
            f"{{{{ $labels.model }}}} moved away from its predictions on the training data: PSI "
            f"{{{{ $value | printf \"%.3f\" }}}} (threshold {s.prediction_psi_threshold}; the alert also fires when "
            f"KS exceeds {s.ks_threshold}), on enough predictions to be evidence at {_percent(s.confidence)}.",
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
    else:
        out.append(Alert(
            A.PREDICTION_DRIFT,
            _either(_prediction_drift(profile, x, s, factor, ks) for x, factor, ks in _branches(s)),
            s.alert_for, "warning",
            "{{ $labels.model }}: predicted classes drifted (PSI {{ $value | printf \"%.3f\" }})",
            f"{_windows_clause(s, drift=True)}, the share of each predicted class of model {{{{ $labels.model }}}} "
            f"moved away from its training share: PSI {{{{ $value | printf \"%.3f\" }}}} "
            f"(threshold {s.prediction_psi_threshold}), on enough predictions to be evidence at "
            f"{_percent(s.confidence)}.",
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


def _ks_clause(profile: ReferenceProfile, s: Settings) -> str:
    if not profile.features:
        return ""
    which = "for a numeric input " if profile.categories else ""
    return f"; {which}the alert also fires when KS exceeds {s.ks_threshold}"


def group_names(profile: ReferenceProfile) -> tuple[str, str]:
    """The recording group and the alert group, evaluated in this order."""
    return f"modelmon-{profile.model}-recording", f"modelmon-{profile.model}-alerts"


def rule_files(profile: ReferenceProfile, settings: Settings) -> dict[str, str]:
    """File name -> YAML text, for prometheus/rules/."""
    url = f"{settings.grafana_url}/d/{dashboard_uid(profile)}"
    recording = {"groups": [{
        "name": group_names(profile)[0],
        "interval": settings.evaluation_interval,
        "rules": recording_rules(profile, settings),
    }]}
    alerting = {"groups": [{
        "name": group_names(profile)[1],
        "interval": settings.evaluation_interval,
        "rules": [a.rule(url) for a in alerts(profile, settings)],
    }]}
    return {"recording.yml": dump_yaml(recording), "alerts.yml": dump_yaml(alerting)}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(document: Any) -> str:
    """Readable YAML: multi-line PromQL as literal blocks, keys in the order written."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)

"""The series catalogue: the name of every recorded series the rules write and the alerts,
dashboards and rule tests read, for the settings' windows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from modelmon.contract import names as N
from modelmon.settings import Settings, seconds

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

"""The Prometheus metrics of one served model, built from its reference profile.

Label children are bound once at start-up so the request path never builds label dicts, and
batch observations are bucketed with NumPy instead of one Python call per value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .profile import QUANTILE_BUCKETS, ReferenceProfile
from .validation import REASONS

# `_created` series double the series count and no rule or panel reads them.
disable_created_metrics()

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
OTHER_CLASS = "other"  # any prediction the profile does not know, so labels stay bounded


def observe_many(child: Histogram, values: np.ndarray) -> None:
    """Observe many values on one histogram child: one increment per bucket, not per value.

    Equivalent to calling `child.observe(v)` for each value (the first bucket whose upper
    bound is >= v takes it), at NumPy speed for batch requests.
    """
    if values.size == 0:
        return
    if values.size == 1:
        child.observe(float(values[0]))
        return
    bounds = child._upper_bounds  # noqa: SLF001 - the histogram's own bucket list
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(child._buckets, counts):  # noqa: SLF001
        if count:
            bucket.inc(int(count))
    child._sum.inc(float(values.sum()))  # noqa: SLF001


class _SameNameHistograms(Collector):
    """One histogram family whose series have different buckets (one set per feature).

    prometheus_client ties buckets to a metric object; the exposition format ties them to a
    series. Each feature gets its own unregistered Histogram and this collector merges them.
    """

    def __init__(self, name: str, documentation: str, parents: Sequence[Histogram]) -> None:
        self._name = name
        self._documentation = documentation
        self._parents = parents

    def describe(self) -> Iterable[Metric]:
        return [Metric(self._name, self._documentation, "histogram")]

    def collect(self) -> Iterable[Metric]:
        family = Metric(self._name, self._documentation, "histogram")
        for parent in self._parents:
            for metric in parent.collect():
                family.samples.extend(metric.samples)
        return [family]


class ModelMetrics:
    """Everything modelmon exports about one model; one instance per server process."""

    def __init__(
        self,
        profile: ReferenceProfile,
        info: Mapping[str, str],
        registry: CollectorRegistry,
        has_probability: bool,
    ) -> None:
        model = profile.model
        self.profile = profile
        self._numeric = [f.name for f in profile.features]
        self._features = {f.name: f for f in profile.features}
        self._registry = registry

        predictions = Counter(
            "modelmon_predictions", "Predicted rows, by predicted class.", ["model", "class"], registry=registry
        )
        self._by_class = {c.label: predictions.labels(model, c.label) for c in profile.classes}
        self._other_class = predictions.labels(model, OTHER_CLASS)

        self._probability = None
        if has_probability and profile.positive is not None:
            probability = Histogram(
                "modelmon_prediction_probability",
                "Predicted probability of the positive class.",
                ["model"],
                buckets=profile.probability_edges,
                registry=registry,
            )
            self._probability = probability.labels(model)

        last = Gauge(
            "modelmon_feature_last_value",
            "Last observed value of each input feature.",
            ["model", "feature"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._last = {f: last.labels(model, f) for f in self._numeric}

        value_parents = [
            Histogram(
                "modelmon_feature_value",
                "Observed input values; buckets are the feature's reference edges.",
                ["model", "feature"],
                buckets=f.edges,
                registry=None,
            )
            for f in profile.features
        ]
        registry.register(
            _SameNameHistograms(
                "modelmon_feature_value",
                "Observed input values; buckets are the feature's reference edges.",
                value_parents,
            )
        )
        self._values = {f.name: p.labels(model, f.name) for f, p in zip(profile.features, value_parents)}

        quantile = Histogram(
            "modelmon_feature_quantile",
            "Reference-CDF rank F_ref(x) of each input value; uniform when inputs have not drifted.",
            ["model", "feature"],
            buckets=QUANTILE_BUCKETS,
            registry=registry,
        )
        self._quantiles = {f: quantile.labels(model, f) for f in self._numeric}

        _reference_cdf_gauge(
            "modelmon_feature_quantile_reference",
            "Share of training rows whose rank F_ref(x) is <= le: the no-drift CDF of modelmon_feature_quantile.",
            registry, model, {f.name: zip(QUANTILE_BUCKETS, f.quantile_reference) for f in profile.features},
        )
        _reference_cdf_gauge(
            "modelmon_feature_value_reference",
            "Share of training values <= le, at the edges of modelmon_feature_value.",
            registry, model, {f.name: zip(f.edges, f.edges_cdf) for f in profile.features},
        )

        out_of_range = Counter(
            "modelmon_feature_out_of_range",
            "Input values outside the training range, by side.",
            ["model", "feature", "side"],
            registry=registry,
        )
        self._below = {f: out_of_range.labels(model, f, "below") for f in self._numeric}
        self._above = {f: out_of_range.labels(model, f, "above") for f in self._numeric}

        ratio = Gauge(
            "modelmon_prediction_reference_ratio",
            "Share of each class among the model's predictions on the training data.",
            ["model", "class"],
            registry=registry,
            multiprocess_mode="max",
        )
        for c in profile.classes:
            ratio.labels(model, c.label).set(c.prior)

        invalid = Counter(
            "modelmon_invalid_requests", "Rejected requests, by reason.", ["model", "reason"], registry=registry
        )
        self._invalid = {r: invalid.labels(model, r) for r in REASONS}

        self._predict_seconds = Histogram(
            "modelmon_model_predict_seconds",
            "Time each request's rows spent inside the model's predict call (one observation per request).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(model)
        self._batch_rows = Histogram(
            "modelmon_batch_rows",
            "Rows per model call: micro-batched requests share one call.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        ).labels(model)

        Gauge(
            "modelmon_model_info",
            "The model being served; always 1.",
            ["model", "version", "run_id", "flavor"],
            registry=registry,
            multiprocess_mode="max",
        ).labels(model, info.get("version", ""), info.get("run_id", ""), info.get("flavor", "")).set(1)

    def observe(
        self,
        columns: Mapping[str, np.ndarray],
        class_counts: Mapping[str, int],
        positive_probability: np.ndarray | None,
    ) -> None:
        """Record one request's rows: inputs, predicted classes and probabilities."""
        for name in self._numeric:
            values = columns[name]
            self._last[name].set(float(values[-1]))
            observe_many(self._values[name], values)
            feature = self._features[name]
            observe_many(self._quantiles[name], feature.rank(values))
            below = int(np.count_nonzero(values < feature.min))
            above = int(np.count_nonzero(values > feature.max))
            if below:
                self._below[name].inc(below)
            if above:
                self._above[name].inc(above)
        for label, count in class_counts.items():
            self._by_class.get(label, self._other_class).inc(count)
        if self._probability is not None and positive_probability is not None:
            # A NaN would poison the histogram's sum for good; extreme inputs can produce one.
            observe_many(self._probability, positive_probability[np.isfinite(positive_probability)])

    def observe_predict(self, seconds: float, requests: int, rows: int) -> None:
        if requests == 1:
            self._predict_seconds.observe(seconds)
        else:
            observe_many(self._predict_seconds, np.full(requests, seconds))
        self._batch_rows.observe(rows)

    def invalid(self, reason: str) -> None:
        self._invalid[reason].inc()


FEEDBACK_DELAY_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)
FEEDBACK_REJECTIONS = ("unknown_request_id", "duplicate", "invalid_label", "invalid_body", "log_off")
LOG_DROP_REASONS = ("queue_full", "write_error")


class FeedbackMetrics:
    """Ground truth and the prediction log: the confusion matrix, label delay, log health."""

    def __init__(self, profile: ReferenceProfile, registry: CollectorRegistry) -> None:
        model = profile.model
        labels = [c.label for c in profile.classes] + [OTHER_CLASS]
        feedback = Counter(
            "modelmon_feedback",
            "Labelled predictions (ground truth received), by actual and predicted class: the confusion matrix.",
            ["model", "actual", "predicted"], registry=registry,
        )
        # Every cell exists from the start, so rates are 0 rather than absent.
        self._cells = {(a, p): feedback.labels(model, a, p) for a in labels[:-1] for p in labels}
        self._rejected = _children(Counter(
            "modelmon_feedback_rejected", "Feedback items refused, by reason.", ["model", "reason"],
            registry=registry), model, FEEDBACK_REJECTIONS)
        self._delay = Histogram(
            "modelmon_feedback_delay_seconds", "Time from a prediction to its ground-truth label.",
            ["model"], buckets=FEEDBACK_DELAY_BUCKETS, registry=registry,
        ).labels(model)
        self._written = Counter(
            "modelmon_prediction_log_written", "Predictions written to the prediction log.", ["model"],
            registry=registry,
        ).labels(model)
        self._dropped = _children(Counter(
            "modelmon_prediction_log_dropped",
            "Predictions never written to the log: queue full (oldest dropped) or the store failed.",
            ["model", "reason"], registry=registry), model, LOG_DROP_REASONS)
        self._pruned = Counter(
            "modelmon_prediction_log_pruned", "Logged predictions deleted by retention (age or row limit).",
            ["model"], registry=registry,
        ).labels(model)
        self._queue = Gauge(
            "modelmon_prediction_log_queue_rows", "Predictions waiting in memory to be written to the log.",
            ["model"], registry=registry, multiprocess_mode="livesum",
        ).labels(model)

    def labelled(self, actual: str, predicted: str, delay_seconds: float) -> None:
        cell = self._cells.get((actual, predicted)) or self._cells[(actual, OTHER_CLASS)]
        cell.inc()
        self._delay.observe(max(delay_seconds, 0.0))

    def rejected(self, reason: str, count: int = 1) -> None:
        self._rejected[reason].inc(count)

    def log_written(self, rows: int) -> None:
        self._written.inc(rows)

    def log_dropped(self, reason: str, rows: int) -> None:
        self._dropped[reason].inc(rows)

    def log_pruned(self, rows: int) -> None:
        self._pruned.inc(rows)

    def log_queue(self, rows: int) -> None:
        self._queue.set(rows)


def _children(metric: Counter, model: str, values: Iterable[str]) -> dict[str, Counter]:
    return {v: metric.labels(model, v) for v in values}


def _reference_cdf_gauge(name: str, documentation: str, registry: CollectorRegistry, model: str,
                         cdf: Mapping[str, Iterable[tuple[float, float]]]) -> None:
    """A static gauge of the training CDF per feature and bound; `max` across workers."""
    gauge = Gauge(name, documentation, ["model", "feature", "le"], registry=registry, multiprocess_mode="max")
    for feature, points in cdf.items():
        for bound, share in points:
            gauge.labels(model, feature, _le(bound)).set(share)


class HttpMetrics:
    """Request latency by route template and status class, so labels stay bounded."""

    def __init__(self, registry: CollectorRegistry, handlers: Iterable[str]) -> None:
        self._duration = Histogram(
            "modelmon_request_duration_seconds",
            "HTTP request latency, by handler (route template), method and status class.",
            ["handler", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._handlers = frozenset(handlers)
        self._children: dict[tuple[str, str, str], Histogram] = {}

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        handler = path if path in self._handlers else "other"
        key = (handler, method if method in _METHODS else "other", f"{status // 100}xx")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._duration.labels(*key)
        child.observe(seconds)


_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


def _le(bound: float) -> str:
    """Format a bucket bound exactly as prometheus_client writes `le`, so series join."""
    return floatToGoString(bound)

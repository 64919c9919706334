"""The Prometheus metrics of one served model, built from its reference profile.

Label children are bound once at start-up so the request path never builds label dicts, and
batch observations are bucketed with NumPy instead of one Python call per value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from modelmon.contract import names as N
from modelmon.contract.buckets import (
    BATCH_BUCKETS,
    ERROR_MULTIPLES,
    FEEDBACK_DELAY_BUCKETS,
    LATENCY_BUCKETS,
    QUANTILE_BUCKETS,
)
from modelmon.contract.names import OTHER as OTHER_CLASS
from modelmon.contract.names import bound_label
from modelmon.contract.reasons import INVALID_REASONS, InvalidReason
from modelmon.model.reference import (
    MAX_CATEGORIES,
    MAX_CLASSES,
    CategoryProfile,
    ClassProfile,
    ReferenceProfile,
    category_label,
)


def _counter(family: N.Family, registry: CollectorRegistry | None) -> Counter:
    return Counter(family.name, family.help, family.labels, registry=registry)


def _gauge(family: N.Family, registry: CollectorRegistry | None, mode: str) -> Gauge:
    """`mode` says how workers' values combine in multiprocess mode (see workers.py)."""
    return Gauge(family.name, family.help, family.labels, registry=registry,
                 multiprocess_mode=mode)  # type: ignore[arg-type]


def _histogram(family: N.Family, registry: CollectorRegistry | None, buckets: Sequence[float]) -> Histogram:
    return Histogram(family.name, family.help, family.labels, buckets=buckets, registry=registry)


def observe_many(child: Histogram, values: np.ndarray) -> None:
    """Observe many values on one histogram child: one increment per bucket, not per value.

    Equivalent to calling `child.observe(v)` for each value (the first bucket whose upper
    bound is >= v takes it), at NumPy speed for batch requests.

    prometheus_client has no public way to add many observations at once, so this reads the
    child's bucket bounds and value cells (`_upper_bounds`, `_buckets`, `_sum`): the same in
    every release from 0.21 to 0.26, which pyproject.toml pins; test_metrics checks the result
    against `observe` one value at a time, so a release that changes them fails there first.
    """
    if values.size == 0:
        return
    if values.size == 1:
        child.observe(float(values[0]))
        return
    bounds = child._upper_bounds  # noqa: SLF001
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(child._buckets, counts, strict=True):  # noqa: SLF001
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
    """Everything modelmon exports about one model's traffic; one instance per server process."""

    def __init__(
        self,
        profile: ReferenceProfile,
        info: Mapping[str, str],
        registry: CollectorRegistry,
        probability_classes: Sequence[str] = (),
    ) -> None:
        """`probability_classes`: the labels of the model's probability columns, in order (none:
        the model gives no probabilities)."""
        model = profile.model
        version = info.get("version", "")
        self.profile = profile
        self._numeric = [f.name for f in profile.features]
        self._features = {f.name: f for f in profile.features}
        # A valid but extreme value (1e308) would make the value histogram's _sum infinite for
        # good: its buckets count it as sent, its sum takes it clipped to this bound, 1e15
        # times the training scale, which no real traffic reaches and no sum overflows from.
        self._sum_bound = {f.name: 1e15 * max(1.0, abs(f.min), abs(f.max)) for f in profile.features}

        classes = self._declare_predictions(profile, registry, version, probability_classes)
        self._declare_inputs(profile, registry)

        if classes:
            ratio = _gauge(N.PREDICTION_REFERENCE_RATIO, registry, "max")
            for c in classes:
                ratio.labels(model, c.label).set(c.prior)

        self._invalid = _children(_counter(N.INVALID_REQUESTS, registry), model, INVALID_REASONS)
        self._predict_seconds = _histogram(N.MODEL_PREDICT_SECONDS, registry, LATENCY_BUCKETS).labels(model)
        self._batch_rows = _histogram(N.BATCH_ROWS, registry, BATCH_BUCKETS).labels(model)
        self._info = _gauge(N.MODEL_INFO, registry, "max").labels(
            model, version, info.get("run_id", ""), info.get("flavor", ""), info.get("registered_name", ""),
            info.get("alias", ""), info.get("predict_path", ""))
        self._info.set(1)

    def _declare_predictions(self, profile: ReferenceProfile, registry: CollectorRegistry, version: str,
                             probability_classes: Sequence[str]) -> tuple[ClassProfile, ...]:
        """The series of the model's answers: class counts, probabilities, expected confusion, a
        regressor's values and their reference; returns the classes that have series."""
        model = profile.model
        predictions = _counter(N.PREDICTIONS, registry)
        # Whatever the profile says, no more than MAX_CLASSES class series (the rest: `other`).
        classes = profile.classes[:MAX_CLASSES]
        self._by_class = {c.label: predictions.labels(model, version, c.label) for c in classes}
        # Rows of a class outside the profile; a regressor's rows, which have no class, all go here.
        self._other_class = predictions.labels(model, version, "" if profile.regression else OTHER_CLASS)

        self._probability = None
        if probability_classes and profile.positive is not None:
            self._probability = _histogram(N.PREDICTION_PROBABILITY, registry, profile.probability_edges).labels(model)

        self._expected: list[list[Counter]] = []  # [predicted][actual], the model's column order
        if probability_classes:
            expected = _counter(N.EXPECTED_CONFUSION, registry)
            self._expected = [[expected.labels(model, version, actual, predicted) for actual in probability_classes]
                              for predicted in probability_classes]

        self._predicted = None
        self._predicted_rank = None
        prediction = profile.prediction
        if profile.regression and prediction is not None:
            self._prediction_profile = prediction
            self._predicted = _histogram(N.PREDICTION_VALUE, registry, prediction.edges).labels(model)
            self._predicted_rank = _histogram(N.PREDICTION_QUANTILE, registry, QUANTILE_BUCKETS).labels(model)
            _reference_cdf_gauge(N.PREDICTION_QUANTILE_REFERENCE, registry, model,
                                 {"": zip(QUANTILE_BUCKETS, prediction.quantile_reference, strict=True)})
            _reference_cdf_gauge(N.PREDICTION_VALUE_REFERENCE, registry, model,
                                 {"": zip(prediction.edges, prediction.edges_cdf, strict=True)})
        return classes

    def _declare_inputs(self, profile: ReferenceProfile, registry: CollectorRegistry) -> None:
        """The series of the inputs: values, ranks and their reference CDFs, categories, missing
        values, values out of the training range."""
        model = profile.model
        last = _gauge(N.FEATURE_LAST_VALUE, registry, "mostrecent")
        self._last = {f: last.labels(model, f) for f in self._numeric}

        # Each feature has its own edges: one unregistered Histogram per feature, one family.
        value_parents = [_histogram(N.FEATURE_VALUE, None, f.edges) for f in profile.features]
        registry.register(_SameNameHistograms(N.FEATURE_VALUE.name, N.FEATURE_VALUE.help, value_parents))
        self._values = {f.name: p.labels(model, f.name) for f, p in zip(profile.features, value_parents, strict=True)}

        quantile = _histogram(N.FEATURE_QUANTILE, registry, QUANTILE_BUCKETS)
        self._quantiles = {f: quantile.labels(model, f) for f in self._numeric}

        _reference_cdf_gauge(N.FEATURE_QUANTILE_REFERENCE, registry, model,
                             {f.name: zip(QUANTILE_BUCKETS, f.quantile_reference, strict=True)
                              for f in profile.features})
        _reference_cdf_gauge(N.FEATURE_VALUE_REFERENCE, registry, model,
                             {f.name: zip(f.edges, f.edges_cdf, strict=True) for f in profile.features})

        self._categories = []
        if profile.categories:
            counter, unseen = _counter(N.FEATURE_CATEGORY, registry), _counter(N.FEATURE_UNSEEN_CATEGORY, registry)
            self._categories = [_Categories(c, model, counter, unseen) for c in profile.categories]
            reference = _gauge(N.FEATURE_CATEGORY_REFERENCE, registry, "max")
            for category in profile.categories:
                for label, share in zip(category.values[:MAX_CATEGORIES], category.shares, strict=False):
                    reference.labels(model, category.name, label).set(share)
                reference.labels(model, category.name, OTHER_CLASS).set(category.other_share)

        self._missing: dict[str, Counter] = {}
        if profile.nullable:
            missing = _counter(N.FEATURE_MISSING, registry)
            missing_reference = _gauge(N.FEATURE_MISSING_REFERENCE, registry, "max")
            for f in profile.nullable:
                self._missing[f.name] = missing.labels(model, f.name)
                missing_reference.labels(model, f.name).set(f.missing_share)

        out_of_range = _counter(N.FEATURE_OUT_OF_RANGE, registry)
        below, above = N.OUT_OF_RANGE_SIDES
        self._below = {f: out_of_range.labels(model, f, below) for f in self._numeric}
        self._above = {f: out_of_range.labels(model, f, above) for f in self._numeric}

    def retire(self) -> None:
        """This version no longer serves: its info series goes to 0 (its counts stay exported)."""
        self._info.set(0)

    def observe(
        self,
        columns: Mapping[str, np.ndarray],
        class_counts: Mapping[str, int],
        positive_probability: np.ndarray | None,
        predicted: np.ndarray | None = None,
    ) -> None:
        """Record one request's rows: inputs, predicted classes (or a regressor's predicted
        values, `predicted`) and probabilities."""
        for name, counter in self._missing.items():
            absent = _missing_mask(columns[name])
            count = int(np.count_nonzero(absent))
            if count:
                counter.inc(count)
        for name in self._numeric:
            values = columns[name]
            if name in self._missing:
                values = values[~np.isnan(values)]
                if values.size == 0:
                    continue
            self._last[name].set(float(values[-1]))
            bound = self._sum_bound[name]
            observe_many(self._values[name], np.clip(values, -bound, bound))
            feature = self._features[name]
            observe_many(self._quantiles[name], feature.rank(values))
            below = int(np.count_nonzero(values < feature.min))
            above = int(np.count_nonzero(values > feature.max))
            if below:
                self._below[name].inc(below)
            if above:
                self._above[name].inc(above)
        for categories in self._categories:
            categories.observe(columns[categories.name])
        for label, count in class_counts.items():
            self._by_class.get(label, self._other_class).inc(count)
        if self._probability is not None and positive_probability is not None:
            # A NaN would poison the histogram's sum for good; extreme inputs can produce one.
            observe_many(self._probability, positive_probability[np.isfinite(positive_probability)])
        if self._predicted is not None and self._predicted_rank is not None and predicted is not None:
            finite = predicted[np.isfinite(predicted)]
            self._other_class.inc(int(predicted.size))  # class "": a regressor's rows
            observe_many(self._predicted, finite)
            observe_many(self._predicted_rank, self._prediction_profile.rank(finite))

    def observe_expected(self, matrix: np.ndarray) -> None:
        """Add an expected confusion matrix ([predicted, actual], the model's column order)."""
        for row, cells in zip(matrix.tolist(), self._expected):
            for value, cell in zip(row, cells):
                if value > 0:
                    cell.inc(value)

    def observe_predict(self, seconds: float, requests: int, rows: int) -> None:
        if requests == 1:
            self._predict_seconds.observe(seconds)
        else:
            observe_many(self._predict_seconds, np.full(requests, seconds))
        self._batch_rows.observe(rows)

    def invalid(self, reason: InvalidReason) -> None:
        self._invalid[reason].inc()


def _missing_mask(values: np.ndarray) -> np.ndarray:
    """Which values are missing: NaN in a numeric column, None or NaN in an object column."""
    if values.dtype.kind == "f":
        mask: np.ndarray = np.isnan(values)
        return mask
    return np.fromiter((v is None or (isinstance(v, float) and v != v) for v in values), bool, values.size)


class _Categories:
    """One categorical input's counters: a child per training category (at most
    MAX_CATEGORIES, whatever the profile says), `other` for the rest, and unseen ones."""

    def __init__(self, profile: CategoryProfile, model: str, counter: Counter, unseen: Counter) -> None:
        self.name = profile.name
        self._children = {label: counter.labels(model, profile.name, label) for label in profile.values[:MAX_CATEGORIES]}
        self._other = counter.labels(model, profile.name, OTHER_CLASS)
        self._unseen = unseen.labels(model, profile.name)
        self._rare = frozenset(profile.rare)  # training categories beyond the kept ones: `other`, not unseen

    def observe(self, values: np.ndarray) -> None:
        counts: dict[str, int] = {}
        for value in values.tolist():
            if value is None or (isinstance(value, float) and value != value):
                continue  # counted as missing
            label = category_label(value)
            counts[label] = counts.get(label, 0) + 1
        for label, count in counts.items():
            child = self._children.get(label)
            if child is not None:
                child.inc(count)
                continue
            self._other.inc(count)
            if label not in self._rare:
                self._unseen.inc(count)


class FeedbackMetrics:
    """Ground truth and the prediction log: the confusion matrix, label delay, log health."""

    def __init__(self, profile: ReferenceProfile, registry: CollectorRegistry, version: str) -> None:
        """`version`: the model version serving at start (`serving` adds the next ones)."""
        model = self._model = profile.model
        self._labels = [c.label for c in profile.classes[:MAX_CLASSES]] + [OTHER_CLASS]
        self._regression = profile.regression
        self._versions: dict[str, _VersionQuality] = {}
        if not profile.regression:
            self._feedback = _counter(N.FEEDBACK, registry)
        else:
            scale = profile.errors.mae if profile.errors is not None and profile.errors.mae > 0 else \
                max(profile.prediction.std if profile.prediction else 1.0, 1e-9)
            self._absolute = _histogram(N.ABSOLUTE_ERROR, registry, [scale * m for m in ERROR_MULTIPLES])
            self._squared = _counter(N.SQUARED_ERROR, registry)
            self._signed = _counter(N.SIGNED_ERROR, registry)
        self.serving(version)
        self._rejected = _children(_counter(N.FEEDBACK_REJECTED, registry), model, N.FEEDBACK_REJECTIONS)
        self._delay = _histogram(N.FEEDBACK_DELAY, registry, FEEDBACK_DELAY_BUCKETS).labels(model)
        self._written = _counter(N.LOG_WRITTEN, registry).labels(model)
        self._dropped = _children(_counter(N.LOG_DROPPED, registry), model, N.LOG_DROP_REASONS)
        self._pruned = _counter(N.LOG_PRUNED, registry).labels(model)
        self._queue = _gauge(N.LOG_QUEUE, registry, "livesum").labels(model)

    def serving(self, version: str) -> None:
        """A version this process serves: its quality series exist from now on (every cell, so
        rates are 0 rather than absent)."""
        if version in self._versions:
            return
        model, labels = self._model, self._labels
        if not self._regression:
            cells = {(a, p): self._feedback.labels(model, version, a, p) for a in labels[:-1] for p in labels}
            self._versions[version] = _VersionQuality(cells)
        else:
            self._versions[version] = _VersionQuality(
                {}, self._absolute.labels(model, version), self._squared.labels(model, version),
                {d: self._signed.labels(model, version, d) for d in N.ERROR_DIRECTIONS})

    def _quality(self, version: str) -> _VersionQuality:
        """A version served since start, else `other` (labels of an older process's predictions)."""
        quality = self._versions.get(version)
        if quality is None:
            self.serving(OTHER_CLASS)
            quality = self._versions[OTHER_CLASS]
        return quality

    def labelled(self, actual: str, predicted: str, delay_seconds: float, version: str) -> None:
        cells = self._quality(version).cells
        cell = cells.get((actual, predicted)) or cells[(actual, OTHER_CLASS)]
        cell.inc()
        self._delay.observe(max(delay_seconds, 0.0))

    def measured(self, predicted: float, actual: float, delay_seconds: float, version: str) -> None:
        """A regressor's labelled prediction: its error, both ways."""
        error = predicted - actual
        if not math.isfinite(error):
            return  # the model answered no finite value: nothing to measure
        quality = self._quality(version)
        assert quality.absolute is not None and quality.squared is not None
        quality.absolute.observe(abs(error))
        quality.squared.inc(error * error)
        quality.signed["over" if error > 0 else "under"].inc(abs(error))
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


@dataclass
class _VersionQuality:
    """One model version's ground-truth series: a classifier's confusion cells, a regressor's errors."""

    cells: dict[tuple[str, str], Counter]
    absolute: Histogram | None = None
    squared: Counter | None = None
    signed: dict[str, Counter] = field(default_factory=dict)


class ReloadMetrics:
    """Registry alias switches: how many loaded and switched, how many failed."""

    def __init__(self, model: str, registry: CollectorRegistry) -> None:
        self._results = _children(_counter(N.MODEL_RELOADS, registry), model, N.RELOAD_RESULTS)

    def reloaded(self, result: str) -> None:
        self._results[result].inc()


def _children(metric: Counter, model: str, values: Iterable[str]) -> dict[str, Counter]:
    return {v: metric.labels(model, v) for v in values}


def _reference_cdf_gauge(family: N.Family, registry: CollectorRegistry, model: str,
                         cdf: Mapping[str, Iterable[tuple[float, float]]]) -> None:
    """A static gauge of a training CDF per feature (or of the predictions: one CDF keyed
    by ""), and bound; `max` across workers."""
    gauge = _gauge(family, registry, "max")
    for feature, points in cdf.items():
        for bound, share in points:
            gauge.labels(*((model, feature) if feature else (model,)), bound_label(bound)).set(share)


class HttpMetrics:
    """Request latency by route template and status class, so labels stay bounded."""

    def __init__(self, registry: CollectorRegistry, handlers: Iterable[str]) -> None:
        self._duration = _histogram(N.REQUEST_DURATION, registry, LATENCY_BUCKETS)
        self._handlers = frozenset(handlers)
        self._children: dict[tuple[str, str, str], Histogram] = {}

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        handler = path if path in self._handlers else OTHER_CLASS
        key = (handler, method if method in _METHODS else OTHER_CLASS, f"{status // 100}xx")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._duration.labels(*key)
        child.observe(seconds)


_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


class CollectorMetrics:
    """What `modelmon collect` counts of the logged inference halves it receives (every
    half-outcome series exists from the start)."""

    def __init__(self, model: str, registry: CollectorRegistry) -> None:
        events = _counter(N.COLLECTOR_EVENTS, registry)
        self._children = {(half, outcome): events.labels(model, half, outcome)
                          for half in N.EVENT_HALVES for outcome in N.EVENT_OUTCOMES}

    def event(self, half: str, outcome: str) -> None:
        self._children[(half, outcome)].inc()

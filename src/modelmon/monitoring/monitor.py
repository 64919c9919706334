"""Monitoring without serving: one model's metrics for rows it predicted anywhere.

The monitoring core (reference profile, metrics, drift, rules, dashboards, alerts) does not
care who called the model. `modelmon serve` predicts and then observes through a Monitor; a
team's own app calls `Monitor.observe(inputs, predictions, probabilities)` after its own model
call and mounts `monitor.metrics_app()` at /metrics (`instrument(app)` adds the HTTP latency
metrics too). Rows are validated as the server validates requests; an invalid row is counted
in `modelmon_invalid_requests_total` by reason and left out, never raised into the caller's
request. Metrics live in the registry passed in (a private one by default), and work in
prometheus_client's multiprocess mode as the server's do.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry

from modelmon.errors import InvalidInputError
from modelmon.model.loading import LoadedModel
from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.model.signature import Feature
from modelmon.monitoring.exposition import exposition_registry, metrics_endpoint, render
from modelmon.monitoring.metrics import HttpMetrics, ModelMetrics
from modelmon.monitoring.validation import RequestValidator
from modelmon.stats.calibration import expected_confusion

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class Observed:
    """What one `observe` call counted: rows observed, rows refused as invalid, and the
    indexes of the observed ones among the rows given."""

    rows: int
    invalid: int
    kept: tuple[int, ...] = ()


class Monitor:
    """One model's metrics, fed with rows and what the model answered for them.

    `features`: the model's inputs as its signature declares them (`from_model_dir` reads
    them); `classes`: the raw class values in the order of the probability columns (default:
    the profile's classes); `probabilities`: whether probabilities come with predictions
    (default: the profile says so)."""

    def __init__(
        self,
        profile: ReferenceProfile,
        features: Sequence[Feature],
        *,
        registry: CollectorRegistry | None = None,
        info: Mapping[str, str] | None = None,
        classes: Sequence[Any] | None = None,
        probabilities: bool | None = None,
        max_rows: int = 100_000,
    ) -> None:
        self.profile = profile
        self.registry = registry if registry is not None else CollectorRegistry()
        self.features = profile.served_features(tuple(features))
        self.regression = profile.regression
        self.validator = RequestValidator(profile.model, self.features, max_rows)
        labels = {c.value: c.label for c in profile.classes}
        self.classes = tuple(classes) if classes is not None else tuple(c.value for c in profile.classes)
        self.class_labels = tuple(labels.get(c, str(c)) for c in self.classes)
        self._labels: dict[Any, str] = {**labels, **{label: label for label in labels.values()}}
        # A row's column in the probabilities, by raw class value or by label.
        self._index: dict[Any, int] = {**{c: i for i, c in enumerate(self.classes)},
                                       **{label: i for i, label in enumerate(self.class_labels)}}
        self.positive_index = (self.classes.index(profile.positive_class)
                               if profile.positive_class in self.classes else None)
        gives = profile.probabilities if probabilities is None else probabilities
        self.probability_classes = self.class_labels if gives and not self.regression else ()
        calibration = profile.calibration
        # A profile of another version of the model (other classes) estimates from raw probabilities.
        self._calibration = (calibration if calibration and list(calibration.classes) == list(self.class_labels)
                             else None)
        self.info = dict(info or {})
        self.version = self.info.get("version", "")  # the `version` label of its predictions
        self.metrics = ModelMetrics(profile, self.info, self.registry, self.probability_classes)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def for_model(cls, model: LoadedModel, profile: ReferenceProfile,
                  registry: CollectorRegistry | None = None, max_rows: int = 100_000) -> Monitor:
        """The monitor of a loaded model: its inputs, classes and identity."""
        gives = model.has_probabilities and model.classes is not None and not profile.regression
        return cls(profile, model.features, registry=registry,
                   info=model.info,
                   classes=model.classes if model.classes is not None else None, probabilities=gives,
                   max_rows=max_rows)

    @classmethod
    def from_model_dir(cls, path: str | Path, registry: CollectorRegistry | None = None,
                       reference: str | Path | None = None) -> Monitor:
        """The monitor of an MLflow model directory and its reference profile (beside it,
        unless `reference` says where)."""
        from modelmon.model.loading import load_model

        model = load_model(path)
        profile = ReferenceProfile.load(Path(reference) if reference else profile_path(Path(path)))
        return cls.for_model(model, profile, registry)

    # -- observing ------------------------------------------------------------------------------
    def observe(self, inputs: Any, predictions: Any, probabilities: Any = None) -> Observed:
        """Count one row or a batch: `inputs` a dict (one row), a list of dicts, a DataFrame or
        a NumPy array (columns in the signature's order); `predictions` the model's answers
        (class values or labels; a regressor's numbers), one per row; `probabilities` one row
        of class probabilities per row, columns in `classes` order. Invalid rows are counted by
        reason and left out."""
        rows = _rows(inputs, [f.name for f in self.features])
        answers = _as_list(predictions)
        if len(answers) != len(rows):
            raise ValueError(f"{len(rows)} rows of inputs but {len(answers)} predictions: give one per row.")
        proba = None if probabilities is None else np.asarray(probabilities, dtype="float64").reshape(len(rows), -1)
        if proba is not None and proba.shape[1] != len(self.classes):
            raise ValueError(f"probabilities have {proba.shape[1]} columns; the model has {len(self.classes)} "
                             f"classes ({', '.join(self.class_labels)}).")
        keep = self._valid(rows)
        invalid = len(rows) - len(keep)
        if keep:
            columns = self.validator.columns([rows[i] for i in keep])  # each of them validated above
            arrays = {f.name: np.asarray(columns[f.name], dtype=f.column_dtype) for f in self.features}
            values = [answers[i] for i in keep]
            if self.regression:
                values = [math.nan if v is None else v for v in values]
            self.observe_arrays(arrays, values, None if proba is None else proba[keep])
        return Observed(len(keep), invalid, tuple(keep))

    def _valid(self, rows: list[dict[str, Any]]) -> list[int]:
        """Indexes of the rows that validate; each other row counted by its first reason."""
        try:
            self.validator.columns(rows)
            return list(range(len(rows)))
        except InvalidInputError:
            pass
        keep = []
        for i, row in enumerate(rows):
            try:
                self.validator.columns([row])
                keep.append(i)
            except InvalidInputError as exc:
                self.metrics.invalid(exc.reason)
        return keep

    def observe_arrays(self, arrays: Mapping[str, np.ndarray], values: Sequence[Any] | np.ndarray,
                       probabilities: np.ndarray | None, elapsed: float | None = None,
                       requests: int = 1, labels: list[str] | None = None) -> None:
        """Count validated rows (typed columns) and the model's answers; `elapsed`: seconds
        the model call of `requests` requests took, when this process made it; `labels`:
        `self.labels(values)`, when the caller has them already."""
        if self.regression:
            predicted = np.asarray(values, dtype="float64")
            if elapsed is not None:
                self.metrics.observe_predict(elapsed, requests, predicted.size)
            self.metrics.observe(arrays, {}, None, predicted)
            return
        values = list(values)
        if elapsed is not None:
            # Each request spent the batch's predict time in the model: one observation each.
            self.metrics.observe_predict(elapsed, requests, len(values))
        self.metrics.observe(arrays, _counts(self.labels(values) if labels is None else labels),
                             self.positive(probabilities))
        if probabilities is not None and self.probability_classes:
            self._observe_expected(values, probabilities)

    def labels(self, values: Sequence[Any]) -> list[str]:
        return [self._labels.get(v, str(v)) for v in values]

    def positive(self, probabilities: np.ndarray | None) -> np.ndarray | None:
        """The positive class' column of `probabilities` (None without one)."""
        if probabilities is None or self.positive_index is None:
            return None
        return probabilities[:, self.positive_index]

    def _observe_expected(self, values: Sequence[Any], proba: np.ndarray) -> None:
        """Each row's calibrated probabilities into the expected confusion counters (CBPE)."""
        index = np.array([self._index.get(v, -1) for v in values], dtype="int64")
        usable = (index >= 0) & np.isfinite(proba).all(axis=1)
        if not usable.all():
            index, proba = index[usable], proba[usable]
        calibrated = self._calibration.apply(proba) if self._calibration is not None else proba
        self.metrics.observe_expected(expected_confusion(index, calibrated))

    # -- exposing -----------------------------------------------------------------------------
    def metrics_app(self) -> ASGIApp:
        """An ASGI app answering every GET with this monitor's metrics, in the format the
        scraper asks for (mount it at /metrics)."""
        exported = exposition_registry(self.registry)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), None)
            body, content_type = render(exported, accept)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", content_type.encode())]})
            await send({"type": "http.response.body", "body": body})

        return app

    def instrument(self, app: Any, metrics_path: str | None = "/metrics") -> None:
        """Serve the metrics at `metrics_path` of a Starlette or FastAPI app (None: not there;
        mount `metrics_app()` elsewhere) and add the HTTP latency metrics
        (`modelmon_request_duration_seconds`, by route and status class); call it after the
        app's routes are declared."""
        if metrics_path:
            app.add_route(metrics_path, metrics_endpoint(self.registry), methods=["GET"], include_in_schema=False)
        handlers = [getattr(route, "path", "") for route in app.routes]
        app.add_middleware(Timing, metrics=HttpMetrics(self.registry, handlers))


class Timing:
    """Pure ASGI middleware timing every request into HttpMetrics (cheaper than
    BaseHTTPMiddleware on every request)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.observe(scope["path"], scope["method"], status, time.perf_counter() - start)


def _plain(value: Any) -> Any:
    """A JSON-like Python value: NumPy scalars unwrapped, NaN as missing."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _rows(inputs: Any, names: list[str]) -> list[dict[str, Any]]:
    """Rows as dicts from a dict (one row, or columns of lists), a list of dicts or of
    sequences, a DataFrame or a NumPy array (columns in `names` order)."""
    if hasattr(inputs, "to_dict") and hasattr(inputs, "columns"):  # a pandas DataFrame
        records = inputs.to_dict("records")
        return [{k: _plain(v) for k, v in r.items()} for r in records]
    if isinstance(inputs, np.ndarray):
        matrix = inputs.reshape(1, -1) if inputs.ndim == 1 else inputs
        return [dict(zip(names, map(_plain, row))) for row in matrix.tolist()]
    if isinstance(inputs, Mapping):
        if inputs and all(isinstance(v, (list, tuple, np.ndarray)) for v in inputs.values()):
            columns = {k: list(v) for k, v in inputs.items()}
            lengths = {len(v) for v in columns.values()}
            if len(lengths) != 1:
                raise ValueError("columns of different lengths: give one value per row in each.")
            return [{k: _plain(v[i]) for k, v in columns.items()} for i in range(lengths.pop())]
        return [{k: _plain(v) for k, v in inputs.items()}]
    if isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
        return [{k: _plain(v) for k, v in row.items()} if isinstance(row, Mapping)
                else dict(zip(names, map(_plain, row))) for row in inputs]
    raise TypeError(f"inputs of type {type(inputs).__name__}: give a dict, a list of dicts, a DataFrame or "
                    "a NumPy array.")


def _as_list(predictions: Any) -> list[Any]:
    if isinstance(predictions, np.generic):  # one NumPy scalar
        return [_plain(predictions)]
    if isinstance(predictions, np.ndarray):
        return [_plain(v) for v in predictions.reshape(-1).tolist()]
    if hasattr(predictions, "tolist"):  # a pandas Series
        return [_plain(v) for v in predictions.tolist()]
    if isinstance(predictions, (list, tuple)):
        return [_plain(v) for v in predictions]
    return [_plain(predictions)]


def _counts(labels: list[str]) -> dict[str, int]:
    if len(labels) == 1:
        return {labels[0]: 1}
    return collections.Counter(labels)

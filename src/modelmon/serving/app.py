"""The FastAPI model server: validate, predict, observe, and expose /metrics.

The app is built from a loaded model and its reference profile only; nothing in here knows
about stores, items or customers.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelmon.contract import names as N
from modelmon.errors import ERROR_SCHEMA, ApiError, InvalidInputError, ModelmonError, invalid_input
from modelmon.model.loading import LoadedModel, load_model
from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.model.source import Origin, fetch
from modelmon.monitoring.exposition import metrics_endpoint
from modelmon.monitoring.feedback import FeedbackRecorder, Truths
from modelmon.monitoring.metrics import FeedbackMetrics, HttpMetrics, ReloadMetrics
from modelmon.monitoring.monitor import Monitor, Timing
from modelmon.monitoring.predictionlog import open_prediction_log
from modelmon.monitoring.validation import RequestValidator, load_json, request_schema, scoring_schema
from modelmon.serving.batching import MicroBatcher
from modelmon.serving.follow import AliasFollower, ServedVersions
from modelmon.serving.http import JSON, REQUEST_ID_HEADER, add_feedback, error_response, read_body, request_id_of
from modelmon.serving.predictor import Answers, Predictor
from modelmon.serving.scoring import MLFLOW_FORMATS, PayloadError, csv_rows, request_rows
from modelmon.settings import Settings, seconds

_ROW: dict[str, Any] = {
    "type": "object",
    "required": ["prediction"],
    "properties": {
        "prediction": {"description": "the model's raw output for the row (a regressor's value: null if not finite)"},
        "label": {"type": "string", "description": "the class label (classifiers)"},
        "probability": {"type": ["number", "null"],
                        "description": "positive-class probability (binary models); null if the model gave NaN"},
        "probabilities": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
    },
}
_HEAD: dict[str, Any] = {"request_id": {"type": "string"}, "model": {"type": "string"}}
_PREDICTION_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"title": "Prediction", **_ROW, "required": ["request_id", "model", "prediction"],
         "properties": {**_HEAD, **_ROW["properties"]}},
        {"title": "Predictions", "type": "object", "required": ["request_id", "model", "predictions"],
         "properties": {**_HEAD, "predictions": {"type": "array", "items": _ROW}}},
    ]
}
_OK: dict[int | str, dict[str, Any]] = {200: {"description": "One prediction, or one per record of a batch.",
             "content": {"application/json": {"schema": _PREDICTION_SCHEMA}}}}

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    for status, text in (
        (400, "Empty body or not JSON."),
        (413, "Body or batch over the configured limit."),
        (422, "A field is missing, extra, of the wrong type, not finite, or out of bounds."),
        (500, "The model failed to predict."),
    )
}


def _example(profile: ReferenceProfile, model: LoadedModel) -> dict[str, Any]:
    """A typical record: each numeric input's training mean, each category's most frequent value."""
    out: dict[str, Any] = {}
    for f in model.features:
        if f.numeric:
            mean = profile.feature(f.name).mean
            out[f.name] = round(mean) if f.kind == "integer" else round(mean, 3)
        else:
            top = profile.category(f.name).values[0]
            out[f.name] = {"boolean": top == "true", "integer": int(top) if top.lstrip("-").isdigit() else top}.get(
                f.kind, top)
    return out


_INVOCATIONS_OK: dict[int | str, dict[str, Any]] = {200: {
    "description": "The model's predictions, one per row, as `mlflow models serve` gives them; X-Request-ID "
                   "names the request (a row of several: `<id>-<i>`) for /feedback: the client's own, when its "
                   "request carried one, else one the server made.",
    "content": {"application/json": {"schema": {"type": "object", "required": ["predictions"],
                                                "properties": {"predictions": {"type": "array"}}}}}}}


def _mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow-skinny")


class _Version:
    """Everything that answers for one model version: a request reads it once, at its start."""

    def __init__(self, model: LoadedModel, profile: ReferenceProfile, settings: Settings) -> None:
        self.model = model
        self.profile = profile
        self.registry = CollectorRegistry()  # its own: its profile fixes buckets and reference shares
        self.monitor = Monitor.for_model(model, profile, self.registry)
        self.predictor = Predictor(model, self.monitor, settings.monitoring)
        self.batcher = MicroBatcher(self.predictor, max_rows=settings.batch_rows,
                                    max_wait=settings.batch_wait_ms / 1000)


def _same_interface(serving: _Version, model: LoadedModel, profile: ReferenceProfile) -> None:
    """A new version must take the same inputs and give the same kind of answer: the API's
    schema and the dashboards were built for them."""
    old, new = serving.profile, profile
    if [(f.name, f.kind, f.nullable) for f in serving.model.features] != \
            [(f.name, f.kind, f.nullable) for f in model.features]:
        raise ModelmonError(f"version {model.version} takes other inputs than version {serving.model.version}: "
                            "serve it as a new deployment")
    if old.task != new.task or [c.label for c in old.classes] != [c.label for c in new.classes]:
        raise ModelmonError(f"version {model.version} answers with other classes or another task than version "
                            f"{serving.model.version}: serve it as a new deployment")


def create_app(
    model: LoadedModel,
    profile: ReferenceProfile,
    settings: Settings | None = None,
    registry: CollectorRegistry | None = None,
    follow: Origin | None = None,
) -> FastAPI:
    """Build the app for one model; a private registry unless one is given (tests, workers).
    `follow`: a registry alias whose moves the app follows (`settings.follow_alias`)."""
    settings = settings or Settings()
    registry = registry if registry is not None else CollectorRegistry()
    validator = RequestValidator(model.name, profile.served_features(model.features), settings.max_batch_rows)
    first = _Version(model, profile, settings)
    versions = ServedVersions(first.registry)
    registry.register(versions)
    feedback_metrics = FeedbackMetrics(profile, registry, model.version)
    prediction_log = open_prediction_log(settings, model.name, model.version, feedback_metrics)
    recorder = (FeedbackRecorder(prediction_log, feedback_metrics, profile.regression)
                if prediction_log is not None else None)
    truths = Truths(profile)

    class _Serving:
        version = first

    def load(origin: Origin) -> _Version:
        """Runs in the follower's thread, beside the version serving."""
        new_model = load_model(fetch(origin))
        new_profile = ReferenceProfile.load(profile_path(new_model.path))
        _same_interface(_Serving.version, new_model, new_profile)
        return _Version(new_model, new_profile, settings)

    def switch(new: _Version) -> None:
        feedback_metrics.serving(new.model.version)
        old, _Serving.version = _Serving.version, new  # from the next request on
        versions.switch(new.registry)
        old.monitor.metrics.retire()

    reloads = ReloadMetrics(model.name, registry)  # 0 unless an alias is followed: the series always exist
    follower = None
    if follow is not None and settings.follow_alias != "0":
        follower = AliasFollower(follow, seconds(settings.follow_alias), load, switch, reloads.reloaded)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The model, its libraries and the app live as long as the process: out of the cyclic
        # garbage collector's sight, a full collection no longer walks their half a million
        # objects (measured: every other 10,000-row request took 106 ms instead of 30, and
        # single-row p99 fell with it).
        gc.collect()
        gc.freeze()
        if follower is not None:
            follower.start()
        yield
        if follower is not None:
            await run_in_threadpool(follower.stop)
        if prediction_log is not None:
            await run_in_threadpool(prediction_log.close)  # what is still queued gets written

    app = FastAPI(
        title=f"modelmon: {model.name}",
        description=f"Predictions of the MLflow model `{model.name}`, monitored with Prometheus.",
        default_response_class=JSON,
        lifespan=lifespan,
    )
    app.state.registry = registry
    app.state.prediction_log = prediction_log
    app.state.follower = follower

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Each method of a path is its own route: list them all, not just the first match's.
            allowed = sorted({m for r in app.routes if getattr(r, "path", None) == request.url.path
                              for m in getattr(r, "methods", ()) or ()})
            headers["Allow"] = ", ".join(allowed)
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(ApiError(exc.status_code, reason, reason, None, str(exc.detail)), headers)

    @app.exception_handler(ApiError)
    async def _refused(request: Request, exc: ApiError) -> Response:
        if isinstance(exc, InvalidInputError):  # refused inputs are counted by reason
            _Serving.version.monitor.metrics.invalid(exc.reason)
        return error_response(exc)

    def _logged(answers: Answers, batch: bool, columns: dict[str, list[Any]], version: str,
                request_id: str) -> list[str]:
        """Each row's id (a batch row's own, `<request id>-<i>`), logged for /feedback."""
        ids = [f"{request_id}-{i}" for i in range(len(answers))] if batch else [request_id]
        if prediction_log is not None:
            prediction_log.record(ids, time.time(), columns, answers.logged(), answers.positive_list(), version,
                                  request_id=request_id)
        return ids

    async def _predicted(columns: dict[str, list[Any]], batch: bool,
                         request_id: str) -> tuple[Answers, list[str]] | Response:
        """The rows' answers and ids, or the error response of a model that failed."""
        serving = _Serving.version  # this request's version, whatever a switch does meanwhile
        try:
            answers = await serving.batcher(columns)
        except Exception as exc:
            message = f"The model failed to predict: {type(exc).__name__}: {exc}"[:300]
            return error_response(ApiError(500, "prediction_failed", "model_error", None, message))
        return answers, _logged(answers, batch, columns, serving.model.version, request_id)

    async def _predict(columns: dict[str, list[Any]], batch: bool, request_id: str) -> Response:
        predicted = await _predicted(columns, batch, request_id)
        if isinstance(predicted, Response):
            return predicted
        answers, ids = predicted
        head = {"request_id": request_id, "model": model.name}
        rows = answers.rows()
        if batch:  # each row is a prediction of its own that a label can name
            out = {**head, "predictions": [{"request_id": i, **row} for i, row in zip(ids, rows)]}
        else:
            out = {**head, **rows[0]}
        return JSON(out, headers={REQUEST_ID_HEADER: request_id})

    @app.post(N.PREDICT_ROUTE, openapi_extra={"requestBody": request_schema(validator, _example(profile, model))},
              responses={**_OK, **_ERRORS}, summary="Predict one record or a batch of records")
    async def predict_post(request: Request) -> Response:
        request_id = request_id_of(request)
        columns, batch = validator.parse_body(await read_body(request, settings.max_body_bytes))
        return await _predict(columns, batch, request_id)

    query_parameters = [
        {"name": f.name, "in": "query", "required": not f.nullable,
         "schema": validator.record.model_json_schema()["properties"][f.name]}
        for f in validator.features
    ]

    @app.get(N.PREDICT_ROUTE, openapi_extra={"parameters": query_parameters}, responses={**_OK, **_ERRORS},
             summary="Predict one record given as query parameters")
    async def predict_get(request: Request) -> Response:
        request_id = request_id_of(request)
        return await _predict(validator.parse_query(request.query_params), False, request_id)

    names = [f.name for f in validator.features]

    @app.post(N.INVOCATIONS_ROUTE, openapi_extra={"requestBody": scoring_schema(validator, _example(profile, model))}, responses={**_INVOCATIONS_OK, **_ERRORS},
              summary="MLflow's scoring protocol, as `mlflow models serve` answers it: predictions as one list")
    async def invocations(request: Request) -> Response:
        request_id = request_id_of(request)
        body = await read_body(request, settings.max_body_bytes)
        if not body.strip():
            raise invalid_input(400, "empty_body", None, "The request body is empty; send dataframe_split, "
                                                         "dataframe_records, instances or inputs, or a CSV table.")
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        try:
            if kind == "text/csv":
                rows, field = csv_rows(body), "body"
            else:
                document = load_json(body)
                field = next((f for f in MLFLOW_FORMATS if isinstance(document, dict) and f in document), "body")
                extra = sorted(set(document) - {field}) if isinstance(document, dict) and field != "body" else []
                if extra:
                    raise invalid_input(422, "extra_field", extra[0], f"'{extra[0]}' is not allowed beside '{field}'.")
                rows = request_rows(document, names)
        except PayloadError as exc:
            raise invalid_input(422, "wrong_type", "body", f"Not an MLflow scoring request: {exc}.") from None
        predicted = await _predicted(validator.batch(rows, field), len(rows) > 1, request_id)
        if isinstance(predicted, Response):
            return predicted
        answers, _ids = predicted
        return JSON({"predictions": answers.predictions}, headers={REQUEST_ID_HEADER: request_id})

    @app.get("/ping", summary="MLflow's liveness check: 200 once the model is loaded", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def ping() -> Response:
        return PlainTextResponse("\n")

    @app.get("/version", summary="The MLflow version that loaded the model (as `mlflow models serve` says it)",
             response_class=PlainTextResponse, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def version() -> Response:
        return PlainTextResponse(_mlflow_version())

    add_feedback(app, recorder, feedback_metrics, truths, settings)

    if settings.metrics_on_app:
        app.get("/metrics", summary="Prometheus metrics", response_class=Response,
                responses={200: {"description": "Prometheus text format, or OpenMetrics when Accept asks for it",
                                 "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}},
                                             OPENMETRICS_CONTENT_TYPE: {"schema": {"type": "string"}}}}},
                )(metrics_endpoint(registry))

    @app.get("/health", summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: the model is loaded and can predict")
    async def ready() -> dict[str, str]:
        return {"status": "ready", "model": model.name, "version": _Serving.version.model.version}

    # Request latency, in the app's registry: it is not any one version's.
    handlers = [getattr(route, "path", "") for route in app.routes]
    app.add_middleware(Timing, metrics=HttpMetrics(registry, handlers))
    return app

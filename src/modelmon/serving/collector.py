"""`modelmon collect`: monitoring for a model that another server answers.

KServe's payload logger (and anything else that can POST) sends what the model received and
what it answered. The collector joins each request with its response, validates the rows as
`modelmon serve` validates requests, and exports the same metrics through a `Monitor`, so the
same rules, dashboards and alerts serve a model modelmon never calls.

KServe logs an inference as two CloudEvents in binary mode with the same `ce-id`: one of type
`org.kubeflow.serving.inference.request` (the request body) and one of type
`...inference.response` (the answer), each sent on its own, in either order, possibly never.
A half waits at most `wait` seconds for the other (at most `max_pending` halves wait; the
oldest give way); what never finds its other half is counted as `unmatched`, a half arriving
after its partner gave up as `late`, a second copy of a half as `duplicate`, and a body that
cannot be read as `invalid`: every outcome is a counter, none is a label value taken from the
client (ids are never labels).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from modelmon.contract.reasons import InvalidReason
from modelmon.errors import ERROR_SCHEMA, ApiError, InvalidInputError
from modelmon.monitoring.feedback import MAX_ID_LENGTH, FeedbackRecorder, Truths
from modelmon.monitoring.metrics import CollectorMetrics, FeedbackMetrics
from modelmon.monitoring.monitor import Monitor, Observed
from modelmon.monitoring.predictionlog import open_prediction_log
from modelmon.serving.http import add_feedback, read_body
from modelmon.serving.predictor import Answers
from modelmon.serving.scoring import PayloadError, request_rows, tensor_values
from modelmon.settings import Settings

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
HALVES = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}


@dataclass(frozen=True)
class Event:
    """One CloudEvent: its id, which half of an inference it is, and its data."""

    id: str
    half: str  # "request" or "response"
    data: Any


def event_from_http(headers: Mapping[str, str], body: bytes) -> Event:
    """A CloudEvent from an HTTP request in binary mode (attributes in `ce-*` headers, as
    KServe's logger sends them) or structured mode (`application/cloudevents+json`)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type", "")
    if content_type.startswith("application/cloudevents+json"):
        try:
            envelope = json.loads(body)
        except ValueError:
            raise PayloadError("the structured CloudEvent is not JSON") from None
        if not isinstance(envelope, dict):
            raise PayloadError("the structured CloudEvent is not a JSON object")
        event_id, event_type, data = envelope.get("id"), envelope.get("type"), envelope.get("data")
    else:
        event_id, event_type = lowered.get("ce-id"), lowered.get("ce-type")
        try:
            data = json.loads(body) if body.strip() else None
        except ValueError:
            raise PayloadError("the event's data is not JSON") from None
    if not event_id or not isinstance(event_id, str):
        raise PayloadError("the event has no id (ce-id)")
    if event_type not in HALVES:
        raise PayloadError(f"the event's type (ce-type) is not {REQUEST_TYPE} or {RESPONSE_TYPE}")
    return Event(event_id, HALVES[str(event_type)], data)


class Joiner:
    """Pairs the request and response halves of each inference by event id, within a
    bounded wait and a bounded number of waiting halves. `count(half, outcome, n)` hears every
    outcome."""

    def __init__(self, count: Callable[[str, str], None], wait: float = 30.0, max_pending: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._count = count
        self.wait = wait
        self.max_pending = max_pending
        self._clock = clock
        self._pending: OrderedDict[str, tuple[Event, float]] = OrderedDict()
        # Ids whose first half gave up waiting, so their other half is `late`, not a new wait.
        self._expired: OrderedDict[str, str] = OrderedDict()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, event: Event) -> tuple[Any, Any] | None:
        """The (request data, response data) of the inference once both halves are here."""
        self.expire()
        waiting = self._pending.get(event.id)
        if waiting is not None:
            other = waiting[0]
            if other.half == event.half:
                self._count(event.half, "duplicate")
                return None
            del self._pending[event.id]
            self._count("request", "joined")
            self._count("response", "joined")
            request, response = (other, event) if other.half == "request" else (event, other)
            return request.data, response.data
        if event.id in self._expired:
            self._count(event.half, "late")
            return None
        self._pending[event.id] = (event, self._clock())
        while len(self._pending) > self.max_pending:
            self._give_up(*self._pending.popitem(last=False))
        return None

    def expire(self) -> None:
        """Give up on the halves that waited longer than `wait`."""
        deadline = self._clock() - self.wait
        while self._pending:
            _, arrived = next(iter(self._pending.values()))
            if arrived > deadline:
                break
            self._give_up(*self._pending.popitem(last=False))

    def _give_up(self, event_id: str, waiting: tuple[Event, float]) -> None:
        self._count(waiting[0].half, "unmatched")
        self._expired[event_id] = waiting[0].half
        while len(self._expired) > self.max_pending:
            self._expired.popitem(last=False)


def response_answers(data: Any, classes: Sequence[Any]) -> tuple[list[Any], list[list[float]] | None]:
    """The predictions of a logged response (`{"predictions": [...]}`, v2 `outputs`, or a bare
    list), and the probabilities when each prediction is a list of one probability per class
    (`classes`: the model's class values in column order; the prediction is then the most
    probable one)."""
    count = len(classes)
    if isinstance(data, dict) and "predictions" in data:
        answers = data["predictions"]
    elif isinstance(data, dict) and isinstance(data.get("outputs"), list) and data["outputs"]:
        first = data["outputs"][0]
        if not isinstance(first, dict):
            raise PayloadError("'outputs' is not a list of tensors")
        shape = first.get("shape")
        flat = tensor_values(first.get("data"))
        if isinstance(shape, list) and len(shape) == 2 and shape[1] == count and count > 1:
            answers = [flat[i:i + count] for i in range(0, len(flat), count)]
        else:
            answers = flat
    elif isinstance(data, list):
        answers = data
    else:
        raise PayloadError("the response has neither 'predictions' nor 'outputs'")
    if not isinstance(answers, list):
        raise PayloadError("'predictions' is not a list")
    if answers and all(isinstance(a, list) for a in answers):
        if count < 2 or any(len(a) != count for a in answers):
            raise PayloadError(f"each prediction is a list, but not of {count} class probabilities")
        probabilities = [[float(p) for p in a] for a in answers]
        return [classes[max(range(count), key=row.__getitem__)] for row in probabilities], probabilities
    return answers, None


def create_collector(monitor: Monitor, settings: Settings | None = None) -> FastAPI:
    """The collector's app for one model: CloudEvents at `/` (KServe's logger URL), rows and
    answers at `/observe`, the metrics at `/metrics`."""
    settings = settings or Settings()
    profile = monitor.profile
    model = profile.model
    count = CollectorMetrics(model, monitor.registry).event
    joiner = Joiner(count, wait=settings.collector_wait_seconds, max_pending=settings.collector_max_pending)
    names = [f.name for f in monitor.features]
    feedback_metrics = FeedbackMetrics(profile, monitor.registry, monitor.version)
    prediction_log = open_prediction_log(settings, model, monitor.version, feedback_metrics)
    recorder = (FeedbackRecorder(prediction_log, feedback_metrics, profile.regression)
                if prediction_log is not None else None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if prediction_log is not None:
            await run_in_threadpool(prediction_log.close)  # what is still queued gets written

    app = FastAPI(title=f"modelmon collector: {model}", lifespan=lifespan,
                  description="Monitoring for a model another server answers: its logged requests and responses.")
    app.state.monitor = monitor
    app.state.joiner = joiner
    app.state.prediction_log = prediction_log

    def log(ids: list[str], rows: list[Any], answers: list[Any], probabilities: Any, observed: Observed) -> None:
        """The observed rows into the prediction log, so /feedback finds them by request id."""
        if prediction_log is None or not observed.kept:
            return
        kept = observed.kept
        columns = {n: [rows[i].get(n) for i in kept] for n in names}
        if profile.regression:
            labels = Answers([answers[i] for i in kept]).logged()  # as the server logs a regressor's values
        else:
            labels = monitor.labels([answers[i] for i in kept])
        positive = None
        if probabilities is not None and monitor.positive_index is not None:
            positive = [float(probabilities[i][monitor.positive_index]) for i in kept]
        prediction_log.record([ids[i] for i in kept], time.time(), columns, labels, positive)

    def refused(status: int, reason: str, message: str) -> JSONResponse:
        return JSONResponse(ApiError(status, "invalid_payload", reason, None, message).body(), status)

    def refused_observation(status: int, reason: InvalidReason, message: str) -> JSONResponse:
        """A refused /observe body, counted like a refused request to `modelmon serve`."""
        monitor.metrics.invalid(reason)
        return refused(status, reason, message)

    event_headers = [
        {"name": "ce-id", "in": "header", "required": True, "schema": {"type": "string", "minLength": 1},
         "description": "the inference's id: its request and response events share it"},
        {"name": "ce-type", "in": "header", "required": True,
         "schema": {"type": "string", "enum": [REQUEST_TYPE, RESPONSE_TYPE]}},
    ]

    @app.post("/", summary="A CloudEvent from KServe's payload logger (binary or structured mode)",
              openapi_extra={"parameters": event_headers,
                             "requestBody": {"content": {"application/json": {"schema": {}}}}},
              responses={200: {"description": "Joined with its other half and observed"},
                         202: {"description": "Waiting for its other half (or counted as a late or duplicate half)"},
                         **_refusals(400, 413, 422)})
    async def cloud_event(request: Request) -> Response:
        half = HALVES.get(request.headers.get("ce-type", ""), "request")
        try:
            body = await read_body(request, settings.max_body_bytes)
        except ApiError as exc:
            count(half, "invalid")
            return JSONResponse(exc.body(), exc.status)
        try:
            event = event_from_http(request.headers, body)
        except PayloadError as exc:
            count(half, "invalid")
            return refused(400, "invalid_event", f"Not a KServe inference event: {exc}.")
        pair = joiner.add(event)
        if pair is None:
            return JSONResponse({"status": "waiting"}, 202)
        try:
            rows = request_rows(pair[0], names)
            answers, probabilities = response_answers(pair[1], monitor.classes)
            if len(answers) != len(rows):
                raise PayloadError(f"{len(rows)} rows in the request but {len(answers)} answers")
            observed = monitor.observe(rows, answers, probabilities)
        except (PayloadError, ValueError, TypeError) as exc:  # answers that are not classes or numbers
            count("request", "invalid")
            return refused(422, "unreadable_inference", f"The joined inference cannot be read: {exc}."[:300])
        log(_ids(event.id, len(rows)), rows, answers, probabilities, observed)
        return JSONResponse({"status": "joined", "observed": observed.rows, "invalid": observed.invalid})

    @app.post("/observe", summary="Rows a model answered elsewhere, with its predictions",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": OBSERVE_SCHEMA}}}},
              responses={200: {"description": "Observed; invalid rows counted by reason and left out"},
                         **_refusals(400, 413, 422)})
    async def observe(request: Request) -> Response:
        try:
            raw = await read_body(request, settings.max_body_bytes)
        except InvalidInputError as exc:
            monitor.metrics.invalid(exc.reason)
            return JSONResponse(exc.body(), exc.status)
        try:
            document = json.loads(raw)
        except ValueError:
            return refused_observation(400, "invalid_json", "The body is not JSON.")
        if not isinstance(document, dict) or not isinstance(document.get("rows"), list) \
                or not isinstance(document.get("predictions"), list):
            return refused_observation(422, "wrong_type", "Send {\"rows\": [records], \"predictions\": [one per row], "
                                               "\"probabilities\": [optional, one list per row]}.")
        rows, predictions = document["rows"], document["predictions"]
        probabilities = document.get("probabilities")
        if len(rows) != len(predictions):
            return refused_observation(422, "length_mismatch", f"{len(rows)} rows but {len(predictions)} predictions.")
        if len(rows) > settings.max_batch_rows:
            return refused_observation(413, "batch_too_large", f"{len(rows)} rows; the limit is {settings.max_batch_rows}.")
        ids = document.get("request_ids")
        if ids is None:
            ids = _ids(uuid.uuid4().hex, len(rows))
        elif (not isinstance(ids, list) or len(ids) != len(rows) or len(set(map(str, ids))) != len(ids)
              or not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_LENGTH for i in ids)):
            return refused_observation(422, "wrong_request_ids", f"request_ids must be {len(rows)} distinct strings of 1 to "
                                                     f"{MAX_ID_LENGTH} characters, one per row.")
        try:
            observed = monitor.observe(rows, predictions, probabilities)
        except (ValueError, TypeError) as exc:
            return refused_observation(422, "wrong_type", str(exc)[:300])
        log(ids, rows, predictions, probabilities, observed)
        return JSONResponse({"observed": observed.rows, "invalid": observed.invalid,
                             "request_ids": [ids[i] for i in observed.kept]})

    @app.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: the profile is loaded")
    async def ready() -> dict[str, str]:
        return {"status": "ready", "model": model}

    @app.middleware("http")
    async def expire_waiting(request: Request, call_next: Any) -> Response:
        joiner.expire()  # also when no event comes: every scrape gives up on stale halves
        response: Response = await call_next(request)
        return response

    add_feedback(app, recorder, feedback_metrics, Truths(profile), settings)
    monitor.instrument(app)
    return app


OBSERVE_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["rows", "predictions"],
    "properties": {
        "rows": {"type": "array", "items": {"type": "object"},
                 "description": "records as the model received them (an invalid one is counted, not refused)"},
        "predictions": {"type": "array", "description": "the model's answer for each row, in order"},
        "probabilities": {"type": ["array", "null"], "items": {"type": "array", "items": {"type": "number"}},
                          "description": "optional: each row's class probabilities, in the model's class order"},
        "request_ids": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
                        "description": "optional: one distinct id per row, for /feedback (default: generated)"},
    },
}


def _refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": "Refused; nothing observed",
                     "content": {"application/json": {"schema": ERROR_SCHEMA}}} for status in statuses}


def _ids(request_id: str, rows: int) -> list[str]:
    """The id of each row of an inference: the request's own for one row, `<id>-<i>` in a
    batch, as `modelmon serve` names batch rows."""
    return [request_id] if rows == 1 else [f"{request_id}-{i}" for i in range(rows)]

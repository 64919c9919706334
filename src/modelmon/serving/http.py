"""HTTP pieces the server and the collector share: the JSON response, the error answer,
reading a body under its size limit, the client's request id, and POST /feedback.

May import: what `modelmon.serving` may.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from modelmon.errors import ApiError, invalid_input
from modelmon.monitoring.feedback import FeedbackRecorder, Truths, answer, parse_feedback
from modelmon.monitoring.metrics import FeedbackMetrics
from modelmon.settings import Settings

__all__ = ["JSON", "REQUEST_ID_HEADER", "add_feedback", "error_response", "read_body", "request_id_of"]


class JSON(JSONResponse):
    """orjson rendering; a JSONResponse so FastAPI documents the body as JSON."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    return JSON(error.body(), error.status, headers)


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most `limit` bytes, refusing larger bodies (413 `body_too_large`) before parsing
    any of it; the server's and the collector's."""
    declared = request.headers.get("content-length")
    too_large = invalid_input(413, "body_too_large", "body",
                              f"The body is over the {limit}-byte limit (the server's max_body_bytes setting, "
                              "--max-body-bytes): send fewer rows per request, or raise the limit.")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


# A client's own X-Request-ID names its request in the log and in /feedback: it must fit the
# log's id column with a batch row's `-<i>` behind it, and stay printable in URLs and logs.
MAX_CLIENT_ID_LENGTH = 64
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:~-]*")
REQUEST_ID_HEADER = "X-Request-ID"


def request_id_of(request: Request) -> str:
    """The id the client gave its request in X-Request-ID, or a new one; a header that cannot
    name a prediction is refused (422, counted as invalid_request_id)."""
    given = request.headers.get(REQUEST_ID_HEADER)
    if given is None:
        return uuid.uuid4().hex
    if not 0 < len(given) <= MAX_CLIENT_ID_LENGTH or not _CLIENT_ID.fullmatch(given):
        raise invalid_input(422, "invalid_request_id", REQUEST_ID_HEADER,
                            f"{REQUEST_ID_HEADER} must be 1 to {MAX_CLIENT_ID_LENGTH} characters of letters, digits "
                            f"and . _ : ~ - (starting with a letter or digit), got {given[:80]!r}; leave it out "
                            "and the server names the request.")
    return given


def _feedback_body(truths: Truths) -> dict[str, Any]:
    item = {
        "type": "object", "required": ["request_id", "actual"], "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string", "minLength": 1, "maxLength": 80,
                           "description": "the request_id of the prediction (a batch row's own id)"},
            "actual": truths.schema,
        },
    }
    return {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [{"title": "Label", **item}, {"title": "Labels", "type": "array", "minItems": 1, "items": item}]}}}}


_FEEDBACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": {"type": "object"}}}}
    for status, text in (
        (200, "Every label was recorded (a batch: `accepted`, `rejected` and one entry per item in `results`)."),
        (207, "A batch of which some labels were recorded and some refused: `results` gives each item's `status` "
              "(accepted, unknown_request_id, duplicate); the accepted ones are recorded, do not send them again."),
        (400, "Empty body or not JSON; nothing recorded."),
        (404, "Unknown request_id: no logged prediction of this model has it (a batch: no item was recorded)."),
        (409, "The prediction already has a label (a batch: no item was recorded)."),
        (413, "Body or batch over the configured limit."),
        (422, "A field is missing or extra, or the label is not one of the model's classes; nothing recorded."),
        (503, "No prediction log, or it cannot be reached; nothing recorded."),
    )
}


def add_feedback(app: FastAPI, recorder: FeedbackRecorder | None, feedback_metrics: FeedbackMetrics,
                 truths: Truths, settings: Settings) -> None:
    """POST /feedback: labels joined to logged predictions by request_id (the server's and the
    collector's; without a prediction log, a 503 that says how to start one)."""

    @app.post("/feedback", openapi_extra={"requestBody": _feedback_body(truths)}, responses=_FEEDBACK_RESPONSES,
              summary="Ground truth: the actual class (or value) of earlier predictions, by request_id")
    async def feedback(request: Request) -> Response:
        try:
            body = await read_body(request, settings.max_body_bytes)
            items, batch = parse_feedback(body, truths, settings.max_batch_rows)
        except ApiError as exc:
            # A body over the size limit is an invalid body here, like any other shape error.
            feedback_metrics.rejected(exc.reason if exc.error == "invalid_feedback" else "invalid_body")
            return error_response(exc)
        if recorder is None:
            feedback_metrics.rejected("log_off", len(items))
            return error_response(ApiError(503, "prediction_log_off", "log_off", None,
                                   "This server keeps no prediction log, so labels cannot be joined to "
                                   "predictions: start it with --prediction-log PATH_OR_URL."))
        try:
            outcomes = await run_in_threadpool(recorder.apply, items)
        except Exception as exc:
            return error_response(ApiError(503, "prediction_log_unavailable", "log_unavailable", None,
                                   f"The prediction log could not be read ({type(exc).__name__}); "
                                   "nothing was recorded, send the labels again later."))
        status, out = answer(outcomes, batch)
        return JSON(out, status)

"""Ground truth: join a label to its logged prediction and count the confusion matrix.

A label names the prediction by the `request_id` the server answered with. Each prediction
takes one label: the store sets it atomically, so a retry or a second replica receiving the
same label gets a 409, never a second count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from modelmon.errors import ApiError
from modelmon.model.reference import ReferenceProfile
from modelmon.monitoring.metrics import FeedbackMetrics
from modelmon.monitoring.predictionlog import PredictionLog

MAX_ID_LENGTH = 80


def _refused(status: int, reason: str, field: str | None, message: str) -> ApiError:
    """The whole body is refused (shape or label); nothing was recorded."""
    return ApiError(status, "invalid_feedback", reason, field, message)


@dataclass(frozen=True)
class FeedbackItem:
    request_id: str
    actual: str  # class label, or a regressor's true value written as repr(float)


@dataclass(frozen=True)
class Outcome:
    request_id: str
    status: str  # accepted | unknown_request_id | duplicate
    actual: str
    predicted: str | None = None
    delay_seconds: float | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"request_id": self.request_id, "status": self.status, "actual": self.actual}
        if self.predicted is not None:
            out["predicted"] = self.predicted
            out["delay_seconds"] = round(self.delay_seconds or 0.0, 3)
        if not self.accepted:
            out["message"] = _MESSAGES[self.status]
        return out


_MESSAGES = {
    "unknown_request_id": "No logged prediction has this request_id (wrong id, never logged, dropped, or pruned).",
    "duplicate": "This prediction already has a label; the first one counts.",
}
STATUS_OF = {"unknown_request_id": 404, "duplicate": 409}
MIXED_BATCH = 207  # a batch of which some items were recorded and some refused


class Truths:
    """What a client may send as the truth: for a classifier, each class's label or its raw
    value (`1` or `"1"`); for a regressor, a finite number. Read into the string the log keeps."""

    def __init__(self, profile: ReferenceProfile) -> None:
        self.regression = profile.regression
        self.labels = [c.label for c in profile.classes]
        self._lookup: dict[str, str] = {}
        self.accepted: list[Any] = list(self.labels)
        for c in profile.classes:
            self._lookup[str(c.value)] = c.label
            self._lookup[c.label] = c.label
            for raw in (c.value, str(c.value)):
                if raw not in self.accepted and isinstance(raw, (str, int)) and not isinstance(raw, bool):
                    self.accepted.append(raw)

    @property
    def schema(self) -> dict[str, Any]:
        if self.regression:
            return {"type": "number", "description": "the true value of the target"}
        return {"enum": self.accepted, "description": "the true class: its label or raw value"}

    @property
    def expected(self) -> str:
        """What `actual` must be, for an error message."""
        if self.regression:
            return "a finite number (the true value of the target)"
        return "one of the model's classes (" + ", ".join(repr(x) for x in self.labels) + ", or their raw values)"

    def __call__(self, raw: Any) -> str | None:
        if isinstance(raw, bool):
            return None
        if self.regression:
            return repr(float(raw)) if isinstance(raw, (int, float)) and math.isfinite(raw) else None
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)  # JSON does not tell 2 from 2.0, nor does JSON Schema's enum
        if not isinstance(raw, (str, int)):
            return None
        return self._lookup.get(str(raw))


def parse_feedback(body: bytes, truths: Truths, max_items: int) -> tuple[list[FeedbackItem], bool]:
    """Items and whether the body was a batch; raises an ApiError naming the field at fault."""
    if not body.strip():
        raise _refused(400, "invalid_body", "body", "The body is empty; send {\"request_id\": ..., \"actual\": ...} or a list of them.")
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _refused(400, "invalid_body", "body", f"The body is not valid JSON ({exc}).") from None
    batch = isinstance(raw, list)
    items = raw if batch else [raw]
    if batch and not items:
        raise _refused(422, "invalid_body", "body", "The batch is empty.")
    if len(items) > max_items:
        raise _refused(413, "invalid_body", "body", f"The batch has {len(items)} items, over the {max_items}-item limit.")
    out = []
    for i, item in enumerate(items):
        where = f"[{i}]." if batch else ""
        if not isinstance(item, Mapping):
            raise _refused(422, "invalid_body", f"[{i}]" if batch else "body",
                                   "Each feedback item is an object {\"request_id\": ..., \"actual\": ...}.")
        extra = sorted(set(item) - {"request_id", "actual"})
        if extra:
            raise _refused(422, "invalid_body", where + extra[0], f"Unknown field {extra[0]!r}; an item has request_id and actual.")
        for name in ("request_id", "actual"):
            if name not in item:
                raise _refused(422, "invalid_body", where + name, f"The field {name!r} is missing.")
        request_id = item["request_id"]
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_LENGTH:
            raise _refused(422, "invalid_body", where + "request_id",
                                   f"request_id must be the non-empty string (at most {MAX_ID_LENGTH} characters) "
                                   "the prediction was answered with.")
        label = truths(item["actual"])
        if label is None:
            raise _refused(422, "invalid_label", where + "actual",
                           f"actual must be {truths.expected}; got {item['actual']!r}.")
        out.append(FeedbackItem(request_id, label))
    return out, batch


class FeedbackRecorder:
    """Looks predictions up in the log, labels them once, and counts the confusion matrix."""

    def __init__(self, log: PredictionLog, metrics: FeedbackMetrics, regression: bool = False) -> None:
        self.log = log
        self.metrics = metrics
        self.regression = regression  # the logged prediction and the truth are numbers

    def apply(self, items: list[FeedbackItem], now: float | None = None) -> list[Outcome]:
        """Blocking (database calls): run it off the event loop."""
        now = time.time() if now is None else now
        wanted = [item.request_id for item in items]
        model = self.log.model  # a label joins only a prediction of the model this server answers for
        found = self.log.store.find(model, wanted)
        if len(found) < len(set(wanted)):
            # A label can overtake its prediction's write: write what is queued and look again.
            self.log.flush()
            found.update(self.log.store.find(model, [i for i in wanted if i not in found]))
        outcomes = []
        seen: set[str] = set()
        for item in items:
            prediction = found.get(item.request_id)
            if prediction is None:
                outcomes.append(Outcome(item.request_id, "unknown_request_id", item.actual))
            elif item.request_id in seen or prediction.actual is not None or \
                    not self.log.store.label(model, item.request_id, item.actual, now):
                outcomes.append(Outcome(item.request_id, "duplicate", item.actual))
            else:
                delay = now - prediction.predicted_at
                if self.regression:
                    self.metrics.measured(float(prediction.prediction), float(item.actual), delay,
                                          prediction.version)
                else:
                    self.metrics.labelled(item.actual, prediction.prediction, delay, prediction.version)
                outcomes.append(Outcome(item.request_id, "accepted", item.actual, prediction.prediction, delay))
            seen.add(item.request_id)
        for outcome in outcomes:
            if not outcome.accepted:
                self.metrics.rejected(outcome.status)
        return outcomes


def answer(outcomes: list[Outcome], batch: bool) -> tuple[int, dict[str, Any]]:
    """HTTP status and body. One label: 200, or its refusal's 404/409. A batch: 200 when every
    item counted; 207 (Multi-Status) when some did and some were refused, so that a client
    treating 4xx as failure neither drops the recorded labels nor retries them into 409s; the
    worst refusal's 404/409 when none counted. A batch's body lists every item's result."""
    refused = [o for o in outcomes if not o.accepted]
    if not batch:
        only = outcomes[0]
        if only.accepted:
            return 200, only.as_dict()
        refusal = ApiError(STATUS_OF[only.status], only.status, only.status, "request_id", _MESSAGES[only.status],
                           request_id=only.request_id)
        return refusal.status, refusal.body()
    body: dict[str, Any] = {"accepted": len(outcomes) - len(refused), "rejected": len(refused),
                            "results": [o.as_dict() for o in outcomes]}
    if not refused:
        return 200, body
    message = f"{len(refused)} of {len(outcomes)} items were refused (see results)"
    if body["accepted"]:
        return MIXED_BATCH, {**body, "message": f"{message}; the {body['accepted']} others were recorded."}
    status = max(STATUS_OF[o.status] for o in refused)
    index, first = next((i, o) for i, o in enumerate(outcomes) if not o.accepted)
    return status, ApiError(status, first.status, first.status, f"[{index}].request_id",
                            f"{message}; nothing was recorded.", None, **body).body()

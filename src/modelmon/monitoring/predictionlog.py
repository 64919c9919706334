"""The prediction log: every prediction kept (id, time, model, inputs, answer) until its label arrives.

Ground truth comes back hours later, by request id; joining it needs the prediction. The log
is one small store interface over SQLAlchemy Core: SQLite in WAL mode for one machine (the
default, a file in the run folder) and any SQLAlchemy URL, PostgreSQL in practice, when
several replicas must see each other's predictions.

A request is one database row, its inputs and answers stored as columns (JSON arrays): a
10,000-row batch costs one insert, not 10,000, and the rows are serialised by one C call
(orjson) rather than one Python call each. Its rows are named `<request id>-<i>` (a single
prediction: the request id), so a label for any row finds its request by that name. Labels go
to their own table, one row per labelled prediction, whose primary key makes "labelled at most
once" hold across replicas. Both tables are keyed by model and id: several models may share one
store (a PostgreSQL database, say), and a label only ever joins a prediction of the model whose
server received it.

Writing never sits on the request path: `PredictionLog.record` appends to a bounded in-memory
queue and a thread writes it in batches, each flush one INSERT statement (see
`PredictionStore.write` for why). When the queue is full the *oldest* entries are dropped and
counted; a request is never failed or slowed for the log's sake.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelmon.monitoring.predictionstore import LoggedRequest, PredictionStore, log, store_url
from modelmon.settings import Settings, seconds

if TYPE_CHECKING:
    from modelmon.monitoring.metrics import FeedbackMetrics


class _Entry:
    """One request's predictions, queued as they came until the writer makes them LoggedRequests."""

    __slots__ = ("at", "columns", "ids", "labels", "probabilities", "request_id", "version")

    def __init__(self, ids: list[str], at: float, columns: Mapping[str, Sequence[Any]], labels: Sequence[str],
                 probabilities: Sequence[float | None] | None, version: str, request_id: str | None) -> None:
        self.ids = ids
        self.at = at
        self.columns = columns
        self.labels = labels
        self.probabilities = probabilities
        self.version = version
        self.request_id = request_id


class PredictionLog:
    """A bounded queue in front of a `PredictionStore`, written by one background thread."""

    prune_seconds = 60.0  # how often retention is applied

    def __init__(self, store: PredictionStore, model: str, version: str, metrics: FeedbackMetrics, *,
                 queue_rows: int, flush_seconds: float, max_age_seconds: float | None = None,
                 max_rows: int | None = None, flush_rows: int | None = None) -> None:
        self.store = store
        self.model = model
        self.version = version
        self.queue_rows = queue_rows
        self.flush_seconds = flush_seconds
        # Write early, before flush_seconds, once this many rows wait.
        self.flush_rows = flush_rows or max(1, min(1_000, queue_rows // 2))
        self.max_age_seconds = max_age_seconds
        self.max_rows = max_rows
        self._metrics = metrics
        self._queue: collections.deque[_Entry] = collections.deque()
        self._rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._write_lock = threading.Lock()  # one writer at a time: the thread or a flush()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self._last_warning = 0.0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="modelmon-prediction-log", daemon=True)
            self._thread.start()

    def record(self, ids: list[str], at: float, columns: Mapping[str, Sequence[Any]], labels: Sequence[str],
               probabilities: Sequence[float | None] | None, version: str | None = None,
               request_id: str | None = None) -> None:
        """Queue one request's rows; O(1) on the request path, never blocks on the store.
        `version`: the model version that predicted them (default: the log's). `request_id`:
        the request the rows belong to, whose ids are `request_id` (one prediction) or
        `<request_id>-<i>`, stored as one; without it, each id is a prediction of its own."""
        if self._thread is None and not self._stop:
            self.start()  # here, not at creation: a process forked after creation gets its own thread
        entry = _Entry(ids, at, columns, labels, probabilities, self.version if version is None else version,
                       request_id)
        dropped = 0
        with self._lock:
            self._queue.append(entry)
            self._rows += len(ids)
            while self._rows > self.queue_rows and self._queue:
                oldest = self._queue.popleft()
                self._rows -= len(oldest.ids)
                dropped += len(oldest.ids)
            rows = self._rows
            if rows >= self.flush_rows:
                self._wake.notify()
        if dropped:
            self._metrics.log_dropped("queue_full", dropped)
        self._metrics.log_queue(rows)

    def flush(self) -> None:
        """Write everything queued now (before a lookup, at shutdown)."""
        with self._write_lock:
            with self._lock:
                entries = list(self._queue)
                self._queue.clear()
                self._rows = 0
            self._metrics.log_queue(0)
            self._write(entries)

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()
        self.store.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._stop and self._rows < self.flush_rows:
                    self._wake.wait(self.flush_seconds)
                if self._stop:
                    return
            self.flush()
            self._maybe_prune()

    def _write(self, entries: list[_Entry]) -> None:
        if not entries:
            return
        requests = [request for entry in entries for request in self._requests_of(entry)]
        rows = sum(len(entry.ids) for entry in entries)
        try:
            duplicates = self.store.write(requests)
        except Exception as exc:
            self._metrics.log_dropped("write_error", rows)
            self._warn(f"could not write {rows} predictions to the log ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}); they are dropped and counted")
            return
        if duplicates:
            self._metrics.log_dropped("duplicate_id", duplicates)
            self._warn(f"{duplicates} predictions were not logged: model {self.model} had logged their request "
                       "ids already (a client reusing X-Request-ID?); labels go to the first prediction of each id")
        self._metrics.log_written(rows - duplicates)

    def _requests_of(self, entry: _Entry) -> list[LoggedRequest]:
        """One LoggedRequest for a request's rows; one per prediction when they have ids of their own."""
        if entry.request_id is not None:
            return [LoggedRequest(entry.request_id, self.model, entry.version, entry.at, entry.columns, entry.labels,
                                  entry.probabilities, batch=entry.ids != [entry.request_id])]
        probabilities = entry.probabilities
        return [LoggedRequest(row_id, self.model, entry.version, entry.at,
                              {name: [values[i]] for name, values in entry.columns.items()}, [entry.labels[i]],
                              None if probabilities is None else [probabilities[i]])
                for i, row_id in enumerate(entry.ids)]

    def _maybe_prune(self) -> None:
        now = time.time()
        if not (self.max_age_seconds or self.max_rows) or now - self._last_prune < self.prune_seconds:
            return
        self._last_prune = now
        try:
            deleted = self.store.prune(self.model, now, self.max_age_seconds, self.max_rows)
        except Exception as exc:
            self._warn(f"could not apply the prediction log's retention ({type(exc).__name__})")
            return
        if deleted:
            self._metrics.log_pruned(deleted)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning(message)


def open_prediction_log(settings: Settings, model: str, version: str, metrics: FeedbackMetrics) -> PredictionLog | None:
    """The server's prediction log as the settings say, or None when it is off; raises
    PredictionLogError at once when the store cannot be opened."""
    if not settings.prediction_log_on:
        return None
    return PredictionLog(
        PredictionStore(store_url(settings.prediction_log_of(model))), model, version, metrics,
        queue_rows=settings.log_queue_rows, flush_seconds=settings.log_flush_seconds,
        max_age_seconds=seconds(settings.log_retention) or None, max_rows=settings.log_max_rows or None)

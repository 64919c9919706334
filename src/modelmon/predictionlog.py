"""The prediction log: every prediction kept (id, time, model, inputs, answer) until its label arrives.

Ground truth comes back hours later, by request id; joining it needs the prediction. The log
is one small store interface over SQLAlchemy Core: SQLite in WAL mode for one machine (the
default, a file in the run folder) and any SQLAlchemy URL, PostgreSQL in practice, when
several replicas must see each other's predictions.

Writing never sits on the request path: `PredictionLog.record` appends to a bounded in-memory
queue and a thread writes it in batches. When the queue is full the *oldest* entries are
dropped and counted; a request is never failed or slowed for the log's sake.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .errors import ModelmonError
from .settings import Settings, seconds

if TYPE_CHECKING:
    from .metrics import FeedbackMetrics

log = logging.getLogger("modelmon.predictionlog")

TABLE = "modelmon_predictions"
COLUMNS = ("request_id", "model", "version", "predicted_at", "inputs", "prediction", "probability")


class PredictionLogError(ModelmonError):
    """The log cannot be opened; the message says what to fix."""


@dataclass(frozen=True)
class LoggedPrediction:
    request_id: str
    model: str
    version: str
    predicted_at: float  # epoch seconds
    inputs: dict[str, Any]
    prediction: str  # class label, as in modelmon_predictions_total{class}; a regressor's value as repr(float)
    probability: float | None  # positive-class probability (binary models)
    actual: str | None = None
    labelled_at: float | None = None


def store_url(location: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a plain file path (which means SQLite)."""
    text = str(location)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


class PredictionStore:
    """SQL storage of logged predictions; every method is one short transaction."""

    def __init__(self, url: str) -> None:
        try:
            import sqlalchemy as sa
        except ImportError:  # pragma: no cover - a dependency of modelmon
            raise PredictionLogError("SQLAlchemy is missing: pip install 'modelmon'.") from None
        self.url = url
        self._sa = sa
        sqlite = url.startswith("sqlite")
        if sqlite:
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                try:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise PredictionLogError(
                        f"Cannot create the folder of prediction log {path} ({exc.strerror}); "
                        "give a writable file path."
                    ) from None
        try:
            self._engine = sa.create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30} if sqlite else {},
                pool_pre_ping=not sqlite,
            )
        except Exception as exc:
            raise PredictionLogError(
                f"Cannot use prediction log {_safe(url)!r}: {exc}. Give a file path (SQLite) or a "
                "SQLAlchemy URL such as postgresql+psycopg://user:password@host/db."
            ) from None
        if sqlite:
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        metadata = sa.MetaData()
        self._table = sa.Table(
            TABLE, metadata,
            sa.Column("request_id", sa.String(80), primary_key=True),
            sa.Column("model", sa.String(200), nullable=False),
            sa.Column("version", sa.String(200), nullable=False),
            sa.Column("predicted_at", sa.Float, nullable=False, index=True),
            sa.Column("inputs", sa.Text, nullable=False),
            sa.Column("prediction", sa.String(200), nullable=False),
            sa.Column("probability", sa.Float, nullable=True),
            sa.Column("actual", sa.String(200), nullable=True),
            sa.Column("labelled_at", sa.Float, nullable=True),
        )
        try:
            metadata.create_all(self._engine)
        except Exception as exc:
            raise PredictionLogError(
                f"Cannot open prediction log {_safe(url)!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                "check that the database is running and reachable, or give a writable file path."
            ) from None
        self._engine.dispose()  # no pooled connection survives into forked workers
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(self._engine.dialect.paramstyle, "?")
        self._insert = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))})"
        self._bulk = _bulk_insert(self._engine.dialect.name, mark)

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows given as tuples in COLUMNS order (`inputs`: a dict, or its JSON text).

        SQLite and PostgreSQL get all rows as one JSON array in one statement, which the
        database unpacks itself: the driver's executemany gives up and retakes the GIL around
        every row's insert, and each retake can wait out the event loop's 5 ms switch interval,
        so a writer thread of many small steps slowed the requests it shared the GIL with.
        Other databases get executemany.
        """
        if not rows:
            return
        with self._engine.begin() as conn:
            if self._bulk is not None:
                conn.exec_driver_sql(self._bulk, (orjson.dumps(rows).decode(),))
            else:
                conn.exec_driver_sql(self._insert, [_with_text_inputs(row) for row in rows])

    def find(self, request_ids: Iterable[str]) -> dict[str, LoggedPrediction]:
        ids = list(dict.fromkeys(request_ids))
        if not ids:
            return {}
        t = self._table
        with self._engine.connect() as conn:
            found = conn.execute(t.select().where(t.c.request_id.in_(ids))).mappings().all()
        return {row["request_id"]: _from_row(dict(row)) for row in found}

    def history(self, model: str) -> list[LoggedPrediction]:
        """Every logged prediction of `model`, oldest first (for `modelmon backtest --log`)."""
        t = self._table
        with self._engine.connect() as conn:
            rows = conn.execute(t.select().where(t.c.model == model).order_by(t.c.predicted_at)).mappings().all()
        return [_from_row(dict(row)) for row in rows]

    def label(self, request_id: str, actual: str, at: float) -> bool:
        """Set the label once: False if it was already set (also by another replica)."""
        t = self._table
        with self._engine.begin() as conn:
            done = conn.execute(
                t.update().where(t.c.request_id == request_id, t.c.actual.is_(None)).values(actual=actual, labelled_at=at)
            )
        return done.rowcount == 1

    def prune(self, now: float, max_age: float | None, max_rows: int | None) -> int:
        """Delete predictions older than `max_age` seconds, then all but the newest `max_rows`."""
        sa, t = self._sa, self._table
        deleted = 0
        with self._engine.begin() as conn:
            if max_age:
                deleted += conn.execute(t.delete().where(t.c.predicted_at < now - max_age)).rowcount
            if max_rows:
                cutoff = conn.execute(
                    sa.select(t.c.predicted_at).order_by(t.c.predicted_at.desc()).offset(max_rows - 1).limit(1)
                ).scalar()
                if cutoff is not None:
                    deleted += conn.execute(t.delete().where(t.c.predicted_at < cutoff)).rowcount
        return deleted

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(self._sa.select(self._sa.func.count()).select_from(self._table)).scalar() or 0)

    def close(self) -> None:
        self._engine.dispose()


def _bulk_insert(dialect: str, mark: str) -> str | None:
    """One INSERT of every row of a JSON array of rows (in COLUMNS order), where the database
    can unpack one: `inputs` is kept as its JSON text, numbers as numbers."""
    numeric = {"predicted_at", "probability"}
    if dialect == "sqlite":
        values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(COLUMNS)))
        source = f"json_each({mark})"
    elif dialect == "postgresql":
        values = ", ".join(f"(v->>{i})::double precision" if c in numeric else f"v->>{i}"
                           for i, c in enumerate(COLUMNS))
        source = f"json_array_elements({mark}::json) AS v"
    else:
        return None
    return f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT {values} FROM {source}"


def _with_text_inputs(row: tuple[Any, ...]) -> tuple[Any, ...]:
    at = COLUMNS.index("inputs")
    inputs = row[at]
    return row if isinstance(inputs, str) else (*row[:at], orjson.dumps(inputs).decode(), *row[at + 1:])


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL: readers (feedback lookups, other workers) do not block the writer, nor it them.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _from_row(row: Mapping[str, Any]) -> LoggedPrediction:
    return LoggedPrediction(
        request_id=row["request_id"], model=row["model"], version=row["version"],
        predicted_at=row["predicted_at"], inputs=orjson.loads(row["inputs"]), prediction=row["prediction"],
        probability=row["probability"], actual=row["actual"], labelled_at=row["labelled_at"],
    )


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


class _Entry:
    """One request's predictions, kept as columns until the writer expands them."""

    __slots__ = ("at", "columns", "ids", "labels", "probabilities", "version")

    def __init__(self, ids: list[str], at: float, columns: Mapping[str, list[Any]], labels: list[str],
                 probabilities: list[float] | None, version: str) -> None:
        self.ids = ids
        self.at = at
        self.columns = columns
        self.labels = labels
        self.probabilities = probabilities
        self.version = version


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

    def record(self, ids: list[str], at: float, columns: Mapping[str, list[Any]], labels: list[str],
               probabilities: list[float] | None, version: str | None = None) -> None:
        """Queue one request's rows; O(1) on the request path, never blocks on the store.
        `version`: the model version that predicted them (default: the log's)."""
        if self._thread is None and not self._stop:
            self.start()  # here, not at creation: a process forked after creation gets its own thread
        entry = _Entry(ids, at, columns, labels, probabilities, self.version if version is None else version)
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
        rows = [row for entry in entries for row in self._rows_of(entry)]
        try:
            self.store.write(rows)
        except Exception as exc:
            self._metrics.log_dropped("write_error", len(rows))
            self._warn(f"could not write {len(rows)} predictions to the log ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}); they are dropped and counted")
            return
        self._metrics.log_written(len(rows))

    def _rows_of(self, entry: _Entry) -> Iterable[tuple[Any, ...]]:
        """Tuples in COLUMNS order, the inputs as a dict (serialised with the whole batch)."""
        names = list(entry.columns)
        records = zip(*(entry.columns[n] for n in names))
        probabilities: Sequence[float | None] = entry.probabilities or [None] * len(entry.ids)
        model, version, at = self.model, entry.version, entry.at
        for request_id, record, label, probability in zip(entry.ids, records, entry.labels, probabilities):
            yield (request_id, model, version, at, dict(zip(names, record)), label, probability)

    def _maybe_prune(self) -> None:
        now = time.time()
        if not (self.max_age_seconds or self.max_rows) or now - self._last_prune < self.prune_seconds:
            return
        self._last_prune = now
        try:
            deleted = self.store.prune(now, self.max_age_seconds, self.max_rows)
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
        PredictionStore(store_url(settings.prediction_log)), model, version, metrics,
        queue_rows=settings.log_queue_rows, flush_seconds=settings.log_flush_seconds,
        max_age_seconds=seconds(settings.log_retention) or None, max_rows=settings.log_max_rows or None)

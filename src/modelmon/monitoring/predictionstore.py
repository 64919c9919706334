"""The prediction log's store: two tables (requests, labels) keyed by model and id over
SQLAlchemy Core - SQLite in WAL mode on one machine, PostgreSQL when replicas share it. Why it
is shaped so: `modelmon.monitoring.predictionlog`.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from modelmon.errors import ModelmonError

# One logger for the prediction log and its store: what an operator filters on.
log = logging.getLogger("modelmon.monitoring.predictionlog")

TABLE = "modelmon_logged_requests"  # one row per logged request (or per prediction the collector logged)


LABELS = "modelmon_labels"  # one row per labelled prediction


COLUMNS = ("request_id", "model", "version", "predicted_at", "batch", "rows", "inputs", "predictions", "probabilities")


_EARLIER_TABLE = "modelmon_predictions"  # one row per prediction, inputs as JSON text: not read any more


_SCHEMA_LOCK = 0x6D6F64656C6D6F6E  # "modelmon": PostgreSQL's advisory lock while the tables are created


_ROW_OF_BATCH = re.compile(r"^(?P<request>.+)-(?P<row>\d+)$")


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


@dataclass(frozen=True)
class LoggedRequest:
    """One request's predictions, as one database row: its inputs and answers as columns."""

    request_id: str
    model: str
    version: str
    predicted_at: float
    columns: Mapping[str, Sequence[Any]]
    labels: Sequence[str]  # what LoggedPrediction.prediction says, per row
    probabilities: Sequence[float | None] | None = None
    batch: bool = False  # its rows are named `<request_id>-<i>`; else its one row is `request_id`

    def as_row(self) -> tuple[Any, ...]:
        """In COLUMNS order; the columns as they are (serialised with the whole flush)."""
        return (self.request_id, self.model, self.version, self.predicted_at, self.batch, len(self.labels),
                self.columns, self.labels, self.probabilities)


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
            sa.Column("model", sa.String(200), primary_key=True),
            sa.Column("request_id", sa.String(80), primary_key=True),
            sa.Column("version", sa.String(200), nullable=False),
            sa.Column("predicted_at", sa.Float, nullable=False, index=True),
            sa.Column("batch", sa.Boolean, nullable=False),
            sa.Column("rows", sa.Integer, nullable=False),
            sa.Column("inputs", sa.Text, nullable=False),  # {"column": [value per row], ...}
            sa.Column("predictions", sa.Text, nullable=False),  # [label per row]
            sa.Column("probabilities", sa.Text, nullable=True),  # [positive-class probability per row]
        )
        self._labels = sa.Table(
            LABELS, metadata,
            sa.Column("model", sa.String(200), primary_key=True),
            sa.Column("request_id", sa.String(100), primary_key=True),  # the prediction's (a batch row's own)
            sa.Column("actual", sa.String(200), nullable=False),
            sa.Column("labelled_at", sa.Float, nullable=False, index=True),
        )
        try:
            _create_schema(self._engine, metadata)
            inspector = sa.inspect(self._engine)
            keyed_by_id = "model" not in {c["name"] for c in inspector.get_columns(LABELS)}
        except Exception as exc:
            raise PredictionLogError(
                f"Cannot open prediction log {_safe(url)!r} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                "check that the database is running and reachable, or give a writable file path."
            ) from None
        if keyed_by_id:
            raise PredictionLogError(
                f"Prediction log {_safe(url)!r} was written by an earlier modelmon, whose labels are keyed by "
                "request id alone: move it away, or give --prediction-log a new path or database.")
        if inspector.has_table(_EARLIER_TABLE):
            log.warning("prediction log %s also holds predictions in %s, the table of an earlier modelmon, "
                        "which this version does not read: labels for them are refused as unknown",
                        _safe(url), _EARLIER_TABLE)
        self._engine.dispose()  # no pooled connection survives into forked workers
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(self._engine.dialect.paramstyle, "?")
        self._insert = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))})"
        self._bulk = _bulk_insert(self._engine.dialect.name, mark)

    def write(self, requests: Sequence[LoggedRequest]) -> int:
        """Insert logged requests, all in one statement where the database can unpack one; the
        number of predictions not written because their model had logged their request id
        already (a client that reused its X-Request-ID): the first prediction keeps the id.

        SQLite and PostgreSQL get every request as one JSON array in one INSERT ... SELECT:
        the driver's executemany gives up and retakes the GIL around every row's insert, and
        each retake can wait out the event loop's 5 ms switch interval, so a writer thread of
        many small steps slowed the requests it shared the GIL with (measured: the writer
        managed one flush of 1,000 rows in 2 s under load, against nine). A request whose id is
        taken is skipped (ON CONFLICT DO NOTHING), so it cannot fail the rest of the flush. Other
        databases get executemany, where a taken id fails the flush.
        """
        if not requests:
            return 0
        rows = [r.as_row() for r in requests]
        with self._engine.begin() as conn:
            if self._bulk is None:
                conn.exec_driver_sql(self._insert, [_as_text(row) for row in rows])
                return 0
            payload = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY).decode()
            written = {row[0] for row in conn.exec_driver_sql(self._bulk, (payload,))}
        return sum(len(r.labels) for r in requests) - _first_rows(requests, written)

    def _requests(self, conn: Any, model: str, ids: list[str]) -> dict[str, tuple[Mapping[Any, Any], int]]:
        """The logged request and row index of each prediction id of `model` that names one."""
        t = self._table
        stems = {}  # id -> (the batch it may be a row of, that row)
        for i in ids:
            match = _ROW_OF_BATCH.match(i)
            if match:
                stems[i] = (match["request"], int(match["row"]))
        wanted = sorted({*ids, *(stem for stem, _ in stems.values())})  # an id is its request's, or a row's
        found: dict[str, Mapping[Any, Any]] = {}
        for chunk in range(0, len(wanted), 500):
            chosen = t.select().where(t.c.model == model, t.c.request_id.in_(wanted[chunk:chunk + 500]))
            for row in conn.execute(chosen).mappings():
                found[row["request_id"]] = row
        out = {}
        for i in ids:
            single = found.get(i)
            if single is not None and not single["batch"]:
                out[i] = (single, 0)
            elif i in stems:
                stem, index = stems[i]
                request = found.get(stem)
                if request is not None and request["batch"] and index < request["rows"]:
                    out[i] = (request, index)
        return out

    def find(self, model: str, request_ids: Iterable[str]) -> dict[str, LoggedPrediction]:
        """The logged predictions of `model` with these ids (a single prediction's request id, or
        a batch row's); another model's predictions are not found, whatever their ids."""
        ids = list(dict.fromkeys(request_ids))
        if not ids:
            return {}
        with self._engine.connect() as conn:
            located = self._requests(conn, model, ids)
            labels = self._labels_of(conn, model, list(located))
        parsed: dict[str, tuple[dict[str, Any], list[Any], list[Any] | None]] = {}
        out = {}
        for i, (request, index) in located.items():
            key = request["request_id"]
            if key not in parsed:
                parsed[key] = _parsed(request)
            out[i] = _prediction(i, request, parsed[key], index, labels.get(i))
        return out

    def _labels_of(self, conn: Any, model: str, ids: list[str]) -> dict[str, tuple[str, float]]:
        t = self._labels
        out = {}
        for chunk in range(0, len(ids), 500):
            for row in conn.execute(t.select().where(t.c.model == model, t.c.request_id.in_(ids[chunk:chunk + 500]))):
                out[row.request_id] = (row.actual, row.labelled_at)
        return out

    def history(self, model: str) -> list[LoggedPrediction]:
        """Every logged prediction of `model`, oldest first (for `modelmon backtest --log`)."""
        t, lt = self._table, self._labels
        with self._engine.connect() as conn:
            requests = conn.execute(t.select().where(t.c.model == model).order_by(t.c.predicted_at)).mappings().all()
            labels = {row.request_id: (row.actual, row.labelled_at)
                      for row in conn.execute(lt.select().where(lt.c.model == model))}
        out = []
        for request in requests:
            parsed = _parsed(request)
            stem = request["request_id"]
            for index in range(request["rows"]):
                name = f"{stem}-{index}" if request["batch"] else stem
                out.append(_prediction(name, request, parsed, index, labels.get(name)))
        return out

    def label(self, model: str, request_id: str, actual: str, at: float) -> bool:
        """Set the label of `model`'s prediction once: False if it was already set (also by
        another replica), or if no prediction of `model` has this id."""
        with self._engine.connect() as conn:
            if request_id not in self._requests(conn, model, [request_id]):
                return False
        try:
            with self._engine.begin() as conn:
                conn.execute(self._labels.insert().values(model=model, request_id=request_id, actual=actual,
                                                          labelled_at=at))
        except self._sa.exc.IntegrityError:  # the primary key: labelled already
            return False
        return True

    def prune(self, model: str, now: float, max_age: float | None, max_rows: int | None) -> int:
        """Delete `model`'s predictions older than `max_age` seconds, then all but its newest
        `max_rows` (whole requests: a batch is kept or deleted as one); the number of predictions
        deleted. Other models' predictions in the same store are theirs to keep."""
        sa, t, lt = self._sa, self._table, self._labels
        deleted = 0
        with self._engine.begin() as conn:
            cutoffs = []
            if max_age:
                cutoffs.append(now - max_age)
            if max_rows:
                newer = sa.func.sum(t.c.rows).over(order_by=(t.c.predicted_at.desc(), t.c.request_id.desc()))
                ranked = sa.select(t.c.predicted_at, newer.label("newer")).where(t.c.model == model).subquery()
                cutoff = conn.execute(sa.select(ranked.c.predicted_at).where(ranked.c.newer >= max_rows)
                                      .order_by(ranked.c.predicted_at.desc()).limit(1)).scalar()
                if cutoff is not None:
                    cutoffs.append(float(cutoff))
            for cutoff in cutoffs:
                old = sa.and_(t.c.model == model, t.c.predicted_at < cutoff)
                deleted += int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.c.rows), 0)).where(old)).scalar()
                               or 0)
                conn.execute(t.delete().where(old))
                # A label comes after its prediction: labels older than the cutoff are of deleted ones.
                conn.execute(lt.delete().where(lt.c.model == model, lt.c.labelled_at < cutoff))
        return deleted

    def count(self, model: str | None = None) -> int:
        """Logged predictions (rows of all requests), of `model` or of every model."""
        sa, t = self._sa, self._table
        query = sa.select(sa.func.coalesce(sa.func.sum(t.c.rows), 0))
        if model is not None:
            query = query.where(t.c.model == model)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def close(self) -> None:
        self._engine.dispose()


def _create_schema(engine: Any, metadata: Any) -> None:
    """Create the tables and indexes that are missing, safely when several processes open one
    store at the same instant (replicas starting together): each statement is CREATE ... IF NOT
    EXISTS, so a process that loses the race finds the table made. PostgreSQL can still fail
    two such statements racing on its catalog, so there they run under a transaction-level
    advisory lock, one process after the other."""
    import sqlalchemy as sa

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
        for table in metadata.sorted_tables:
            conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _parsed(request: Mapping[Any, Any]) -> tuple[dict[str, Any], list[Any], list[Any] | None]:
    probabilities = request["probabilities"]
    return (orjson.loads(request["inputs"]), orjson.loads(request["predictions"]),
            orjson.loads(probabilities) if probabilities is not None else None)


def _prediction(name: str, request: Mapping[Any, Any], parsed: tuple[dict[str, Any], list[Any], list[Any] | None],
                index: int, label: tuple[str, float] | None) -> LoggedPrediction:
    inputs, predictions, probabilities = parsed
    return LoggedPrediction(
        request_id=name, model=request["model"], version=request["version"], predicted_at=request["predicted_at"],
        inputs={column: values[index] for column, values in inputs.items()}, prediction=predictions[index],
        probability=probabilities[index] if probabilities is not None else None,
        actual=label[0] if label else None, labelled_at=label[1] if label else None)


def _first_rows(requests: Sequence[LoggedRequest], written: set[str]) -> int:
    """Predictions written: of the requests whose ids were written, the first with each id (an
    id taken earlier in the same flush is skipped like one taken before it)."""
    seen: set[str] = set()
    rows = 0
    for request in requests:
        if request.request_id in written and request.request_id not in seen:
            seen.add(request.request_id)
            rows += len(request.labels)
    return rows


def _bulk_insert(dialect: str, mark: str) -> str | None:
    """One INSERT of every row of a JSON array of rows (in COLUMNS order), where the database
    can unpack one; the columns and answers are kept as their JSON text. A row whose (model,
    request id) is taken is skipped; the ids written are returned."""
    if dialect == "sqlite":
        values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(COLUMNS)))
        source = f"json_each({mark}) WHERE true"  # WHERE: SQLite's parser wants one before ON CONFLICT
    elif dialect == "postgresql":
        cast = {"predicted_at": "::double precision", "batch": "::boolean", "rows": "::integer"}
        values = ", ".join(f"(v->>{i}){cast.get(c, '')}" for i, c in enumerate(COLUMNS))
        source = f"json_array_elements({mark}::json) AS v"
    else:
        return None
    return (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT {values} FROM {source} "
            "ON CONFLICT DO NOTHING RETURNING request_id")


def _as_text(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row for executemany: the columns and answers as JSON text."""
    def text(value: Any) -> Any:
        return None if value is None else orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()

    return (*row[:6], text(row[6]), text(row[7]), text(row[8]))


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL: readers (feedback lookups, other workers) do not block the writer, nor it them.
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    # Switching a new file to WAL answers "database is locked" at once, without waiting, while
    # another process (a replica starting at the same instant) holds it: try again for as long
    # as the busy timeout would have waited. Once one process has switched it, WAL stays.
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url

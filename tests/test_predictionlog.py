"""The prediction log on a real SQLite file: storage, single labelling, retention, the bounded queue."""

from __future__ import annotations

import sqlite3
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from modelmon.monitoring.metrics import FeedbackMetrics
from modelmon.monitoring.predictionlog import PredictionLog
from modelmon.monitoring.predictionstore import LoggedRequest, PredictionLogError, PredictionStore, store_url


def _row(i: int, at: float) -> LoggedRequest:
    return LoggedRequest(f"r{i}", "stores", "1", at, {"items_count": [i]}, ["normal"], [0.1])


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"model": "stores", **labels}) or 0.0


def test_store_keeps_rows_in_a_wal_sqlite_file_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "run" / "predictions.sqlite"
    store = PredictionStore(store_url(path))
    store.write([_row(i, 1000.0 + i) for i in range(5)])
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = PredictionStore(store_url(path))
    found = again.find("stores", ["r1", "r4", "missing"])
    assert set(found) == {"r1", "r4"}
    assert found["r4"].inputs == {"items_count": 4} and found["r4"].predicted_at == 1004.0
    assert again.count() == 5


def test_a_prediction_takes_one_label_only(tmp_path: Path) -> None:
    store = PredictionStore(store_url(tmp_path / "p.sqlite"))
    store.write([_row(1, 1.0)])
    assert store.label("stores", "r1", "success", 5.0) is True
    assert store.label("stores", "r1", "normal", 6.0) is False
    assert store.label("stores", "unknown", "normal", 6.0) is False
    logged = store.find("stores", ["r1"])["r1"]
    assert (logged.actual, logged.labelled_at) == ("success", 5.0)


def test_retention_by_age_then_by_row_count(tmp_path: Path) -> None:
    store = PredictionStore(store_url(tmp_path / "p.sqlite"))
    store.write([_row(i, float(i)) for i in range(100)])
    assert store.prune("stores", now=100.0, max_age=50.0, max_rows=None) == 50  # predicted_at < 50 goes
    assert store.prune("stores", now=100.0, max_age=None, max_rows=10) == 40
    assert set(store.find("stores", [f"r{i}" for i in range(100)])) == {f"r{i}" for i in range(90, 100)}


def test_an_unusable_location_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(PredictionLogError, match="writable file path"):
        PredictionStore(store_url(tmp_path / "file" / "p.sqlite"))
    with pytest.raises(PredictionLogError, match="SQLAlchemy URL"):
        PredictionStore("nosuchdialect://x")


def _log(tmp_path: Path, **settings) -> tuple[PredictionLog, CollectorRegistry]:
    from modelmon.model.reference import ReferenceProfile, profile_path

    registry = CollectorRegistry()
    profile = ReferenceProfile.load(profile_path(Path(__file__).resolve().parents[1] / "models" / "stores"))
    metrics = FeedbackMetrics(profile, registry, "1")
    store = PredictionStore(store_url(tmp_path / "p.sqlite"))
    limits = {"queue_rows": 10_000, "flush_seconds": 0.5, **settings}
    return PredictionLog(store, "stores", "1", metrics, **limits), registry


def _record(log: PredictionLog, first: int, rows: int) -> None:
    ids = [f"r{i}" for i in range(first, first + rows)]
    log.record(ids, time.time(), {"items_count": list(range(rows))}, ["normal"] * rows, [0.2] * rows)


def test_the_writer_thread_writes_in_the_background(tmp_path: Path) -> None:
    log, registry = _log(tmp_path, flush_seconds=0.05)
    _record(log, 0, 30)
    deadline = time.monotonic() + 5
    while log.store.count() < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.store.count() == 30
    assert _sample(registry, "modelmon_prediction_log_written_total") == 30
    log.close()


def test_a_full_queue_drops_the_oldest_entries_and_counts_them(tmp_path: Path) -> None:
    # The writer waits a minute: nothing leaves the queue during the burst.
    log, registry = _log(tmp_path, queue_rows=100, flush_rows=10_000, flush_seconds=60)
    for k in range(10):
        _record(log, 20 * k, 20)  # 200 rows into a 100-row queue
    assert _sample(registry, "modelmon_prediction_log_dropped_total", reason="queue_full") == 100
    assert _sample(registry, "modelmon_prediction_log_queue_rows") == 100
    log.close()  # writes what is left
    store = PredictionStore(log.store.url)
    assert set(store.find("stores", [f"r{i}" for i in range(200)])) == {f"r{i}" for i in range(100, 200)}


def test_a_failing_store_drops_and_counts_without_raising(tmp_path: Path) -> None:
    log, registry = _log(tmp_path, flush_seconds=60, flush_rows=10_000)
    sqlite3.connect(tmp_path / "p.sqlite").execute("DROP TABLE modelmon_logged_requests")
    _record(log, 0, 7)
    log.flush()
    assert _sample(registry, "modelmon_prediction_log_dropped_total", reason="write_error") == 7
    assert _sample(registry, "modelmon_prediction_log_written_total") == 0


def test_a_batch_is_one_database_row_whose_predictions_are_found_and_labelled_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    store = PredictionStore(store_url(path))
    batch = LoggedRequest("abc", "stores", "1", 10.0, {"items_count": [5, 6, 7], "customers_count": [1, 2, 3]},
                          ["normal", "success", "normal"], [0.1, 0.9, 0.2], batch=True)
    # A collector's own ids may look like a batch row's: a prediction logged under "evt-1" is that one.
    single = LoggedRequest("evt-1", "stores", "1", 11.0, {"items_count": [8], "customers_count": [4]}, ["success"])
    store.write([batch, single])
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM modelmon_logged_requests").fetchone() == (2,)
    assert store.count() == 4
    found = store.find("stores", ["abc-1", "abc-3", "abc", "evt-1", "evt-0"])
    assert set(found) == {"abc-1", "evt-1"}
    assert found["abc-1"].inputs == {"items_count": 6, "customers_count": 2}
    assert (found["abc-1"].prediction, found["abc-1"].probability) == ("success", 0.9)
    assert found["evt-1"].inputs == {"items_count": 8, "customers_count": 4} and found["evt-1"].probability is None
    assert store.label("stores", "abc-2", "success", 20.0) is True
    assert store.label("stores", "abc-2", "normal", 21.0) is False
    assert store.label("stores", "abc-3", "normal", 21.0) is False  # no such row in the batch
    assert [(p.request_id, p.actual) for p in store.history("stores")] == \
        [("abc-0", None), ("abc-1", None), ("abc-2", "success"), ("evt-1", None)]


def test_retention_by_row_count_counts_the_rows_of_batches(tmp_path: Path) -> None:
    store = PredictionStore(store_url(tmp_path / "p.sqlite"))
    store.write([LoggedRequest(f"b{i}", "stores", "1", float(i), {"items_count": [i] * 10}, ["normal"] * 10,
                               batch=True) for i in range(10)])
    assert store.prune("stores", now=100.0, max_age=None, max_rows=25) == 70  # the newest three batches hold >= 25
    assert store.count() == 30 and set(store.find("stores", ["b6-0", "b7-0", "b9-9"])) == {"b7-0", "b9-9"}


def test_a_log_of_an_earlier_version_is_named_in_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "p.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE modelmon_predictions (request_id TEXT PRIMARY KEY)")
    with caplog.at_level("WARNING", logger="modelmon.monitoring.predictionlog"):
        PredictionStore(store_url(path)).close()
    assert "modelmon_predictions, the table of an earlier modelmon" in caplog.text


def test_models_sharing_a_store_each_see_only_their_own_predictions(tmp_path: Path) -> None:
    store = PredictionStore(store_url(tmp_path / "shared.sqlite"))
    store.write([LoggedRequest(f"r{i}", "stores", "1", float(i), {"x": [i]}, ["normal"]) for i in range(10)])
    # The same ids, logged by another model: another prediction each, not a clash.
    store.write([LoggedRequest(f"r{i}", "wine", "3", 50.0 + i, {"x": [i]}, ["class_0"]) for i in range(10)])
    assert store.count() == 20 and store.count("wine") == 10
    assert store.find("wine", ["r1"])["r1"].prediction == "class_0"
    assert store.find("diabetes", ["r1"]) == {}
    assert store.label("wine", "r1", "class_2", 60.0) is True
    assert store.find("stores", ["r1"])["r1"].actual is None, "another model's label is not this one's"
    assert store.label("stores", "r1", "success", 61.0) is True
    assert store.label("diabetes", "r2", "150.0", 61.0) is False
    assert [p.actual for p in store.history("stores")][:3] == [None, "success", None]
    # Retention is each model's own: pruning one model leaves the other's predictions and labels.
    assert store.prune("stores", now=100.0, max_age=10.0, max_rows=None) == 10
    assert store.count("stores") == 0 and store.count("wine") == 10
    assert store.find("wine", ["r1"])["r1"].actual == "class_2"
    assert store.prune("wine", now=100.0, max_age=None, max_rows=4) == 6
    assert set(store.find("wine", [f"r{i}" for i in range(10)])) == {"r6", "r7", "r8", "r9"}


def test_a_reused_request_id_skips_that_prediction_only_and_counts_it(tmp_path: Path) -> None:
    log, registry = _log(tmp_path, flush_seconds=60, flush_rows=10_000)
    log.record(["dup"], 1.0, {"items_count": [1]}, ["normal"], [0.1], request_id="dup")
    log.flush()
    # Taken before this flush, and twice within it: each later one skipped, the others written.
    log.record(["dup"], 2.0, {"items_count": [2]}, ["success"], [0.9], request_id="dup")
    log.record(["b-0", "b-1"], 3.0, {"items_count": [3, 4]}, ["normal"] * 2, [0.2] * 2, request_id="b")
    log.record(["b-0", "b-1", "b-2"], 4.0, {"items_count": [5, 6, 7]}, ["normal"] * 3, [0.2] * 3, request_id="b")
    log.record(["ok"], 5.0, {"items_count": [8]}, ["normal"], [0.3], request_id="ok")
    log.flush()
    assert _sample(registry, "modelmon_prediction_log_dropped_total", reason="duplicate_id") == 4
    assert _sample(registry, "modelmon_prediction_log_written_total") == 1 + 2 + 1
    found = log.store.find("stores", ["dup", "b-1", "b-2", "ok"])
    assert found["dup"].predicted_at == 1.0 and found["b-1"].inputs == {"items_count": 4}
    assert set(found) == {"dup", "b-1", "ok"}


def test_a_log_of_the_earlier_schema_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # labels keyed by request id alone, as modelmon wrote them before
        db.execute("CREATE TABLE modelmon_labels (request_id VARCHAR(100) PRIMARY KEY, actual VARCHAR(200) "
                   "NOT NULL, labelled_at FLOAT NOT NULL)")
    with pytest.raises(PredictionLogError, match=r"earlier modelmon.*new path"):
        PredictionStore(store_url(path))


def _open(url: str, start: Any, errors: Any) -> None:
    start.wait()
    try:
        PredictionStore(url).close()
    except Exception as exc:  # reported to the test, which says which process failed and how
        errors.put(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")


def open_at_once(url: str, processes: int = 6) -> None:
    """Open the store at `url` from `processes` forked processes released at the same instant,
    as replicas starting together do; every one must succeed."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    start = context.Barrier(processes)
    workers = [context.Process(target=_open, args=(url, start, errors)) for _ in range(processes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        if w.exitcode is None:
            w.kill()
    assert [w.exitcode for w in workers] == [0] * processes
    assert errors.empty(), errors.get()


def test_replicas_opening_one_new_store_at_the_same_instant_all_start(tmp_path: Path) -> None:
    """`modelmon up --replicas N` starts N servers on one log at once: each creates the schema
    if it is missing, and none may fail because another made it first (it did, now and then)."""
    PredictionStore(store_url(tmp_path / "warm.sqlite")).close()  # imports done: the children start together
    for attempt in range(40):
        url = store_url(tmp_path / f"race-{attempt}.sqlite")
        open_at_once(url)
    store = PredictionStore(url)
    store.write([_row(1, 1.0)])
    assert store.count() == 1

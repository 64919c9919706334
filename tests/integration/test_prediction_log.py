"""The prediction log with real server processes: SQLite across a restart, PostgreSQL shared by two."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelmon.monitoring.predictionstore import PredictionStore, store_url

from ..test_predictionlog import open_at_once
from .conftest import free_port, running, wait_until

ROWS = [{"items_count": 1500 + 40 * i, "customers_count": 500 + 45 * i} for i in range(20)]


def predict(url: str) -> list[dict]:
    """Ten single requests and a batch of ten: twenty predictions, each with its own id."""
    singles = [httpx.post(f"{url}/predict", json=row).json() for row in ROWS[:10]]
    batch = httpx.post(f"{url}/predict", json={"instances": ROWS[10:]}).json()["predictions"]
    return singles + batch


def labels(answers: list[dict]) -> list[dict]:
    # Ground truth that disagrees with the model on some rows.
    return [{"request_id": a["request_id"], "actual": 1 if row["customers_count"] > 800 else 0}
            for a, row in zip(answers, ROWS)]


def serve(port: int, log: str, **env: str):
    return running(["serve", "--port", str(port)], ready_url=f"http://127.0.0.1:{port}/ready",
                   env={"MODELMON_PREDICTION_LOG": log, **env})


def test_sqlite_log_survives_a_server_restart(tmp_path: Path) -> None:
    log = str(tmp_path / "run" / "predictions.sqlite")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # An hour between writes: only the shutdown path can write these predictions.
    with serve(port, log, MODELMON_LOG_FLUSH_SECONDS="3600"):
        answers = predict(url)
        assert PredictionStore(store_url(log)).count() == 0  # nothing written yet
    # Stopped (Ctrl-C): what was queued was written on the way out. A new process, the same file:
    with serve(port, log):
        response = httpx.post(f"{url}/feedback", json=labels(answers))
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["predicted"] for r in results] == [a["label"] for a in answers]
        assert all(r["delay_seconds"] > 0 for r in results)
        again = httpx.post(f"{url}/feedback", json=labels(answers)[:1])
        assert again.status_code == 409
    assert PredictionStore(store_url(log)).count() == len(answers)


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster from Debian's packages, on 127.0.0.1 and a free port."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (make test installs Debian's postgresql package)")
    data = Path(tempfile.mkdtemp(prefix="modelmon-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: the package's postgres user runs it
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root with no postgres user to run PostgreSQL as")
        shutil.chown(data, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    started = False
    try:
        init = subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data / "db"), "-U", "modelmon",
                               "--auth=trust", "-E", "UTF8"], capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            pytest.skip(f"PostgreSQL cannot start here: initdb failed ({init.stderr.strip()[-300:]})")
        start = subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"),
                                "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "-w", "start"],
                               capture_output=True, text=True, timeout=120)
        if start.returncode != 0:
            pytest.skip(f"PostgreSQL cannot start here: {(data / 'log').read_text()[-300:]}")
        started = True
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "modelmon", "modelmon"],
                       check=True, timeout=60)
        yield f"postgresql+psycopg://modelmon@127.0.0.1:{port}/modelmon"
    finally:
        if started:
            subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def test_two_servers_share_one_postgresql_log(postgres: str) -> None:
    port_a, port_b = free_port(), free_port()
    a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    store = PredictionStore(postgres)
    with serve(port_a, postgres), serve(port_b, postgres):
        from_a, from_b = predict(a), predict(b)
        wait_until(lambda: store.count() == 40, timeout=10, what="both servers' predictions in PostgreSQL")
        # Each replica takes the labels of the other's predictions.
        for url, answers in ((b, from_a), (a, from_b)):
            response = httpx.post(f"{url}/feedback", json=labels(answers))
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == 20
        # A label already taken by one replica is a duplicate on the other.
        duplicate = httpx.post(f"{a}/feedback", json=labels(from_a)[:1])
        assert duplicate.status_code == 409 and duplicate.json()["reason"] == "duplicate"
        counted = sum(_feedback_total(url) for url in (a, b))

        # The same label sent to both replicas at once: exactly one of each pair is accepted.
        from concurrent.futures import ThreadPoolExecutor

        fresh = predict(a)
        wait_until(lambda: store.count() == 60, timeout=10, what="the new predictions in PostgreSQL")
        sends = [(url, item) for item in labels(fresh) for url in (a, b)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda s: httpx.post(f"{s[0]}/feedback", json=s[1]).status_code, sends))
        per_label = [sorted(statuses[i:i + 2]) for i in range(0, len(statuses), 2)]
        assert per_label == [[200, 409]] * len(fresh), per_label
        raced = sum(_feedback_total(url) for url in (a, b)) - counted
    assert counted == 40
    assert raced == 20
    logged = store.find("stores", [a["request_id"] for a in from_a + from_b])
    assert len(logged) == 40 and all(p.actual is not None for p in logged.values())
    for answers in (from_a, from_b):
        assert [logged[a["request_id"]].inputs for a in answers] == ROWS


def _feedback_total(url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "modelmon_feedback_total")


def test_replicas_creating_the_postgresql_schema_at_the_same_instant_all_start(postgres: str) -> None:
    """Each of N replicas starting at once creates the tables if they are missing: none fails
    because another created them first."""
    import sqlalchemy as sa

    engine = sa.create_engine(postgres)
    for _ in range(8):
        with engine.begin() as conn:  # a new database each time: the tables are missing again
            conn.exec_driver_sql("DROP TABLE IF EXISTS modelmon_logged_requests, modelmon_labels")
        engine.dispose()
        open_at_once(postgres)

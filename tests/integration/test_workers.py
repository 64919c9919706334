"""`modelmon serve --workers N`: every worker's counts in one /metrics, across worker deaths."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..test_exposition import assert_exposition_is_clean
from .conftest import free_port, running, wait_until
from .load import send_load


def totals(url: str) -> dict[str, Any]:
    text = httpx.get(f"{url}/metrics").text
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "modelmon_predictions_total":
                out[s.labels["class"]] = out.get(s.labels["class"], 0) + s.value
            elif s.name == "modelmon_feature_value_count" and s.labels["feature"] == "items_count":
                out["items_count"] = s.value
            elif s.name == "modelmon_feature_last_value" and s.labels["feature"] == "customers_count":
                out.setdefault("last_customers", []).append(s.value)
    return out


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_counts_are_summed_across_workers_and_survive_a_killed_worker(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(["serve", "--port", str(port), "--workers", "2", "--multiproc-dir", str(tmp_path / "mp")],
                 ready_url=f"{url}/ready", timeout=120) as server:
        wait_until(lambda: len(worker_pids(server.pid)) == 2, what="two workers")
        first = send_load(url, 600, every_nth_success=3, concurrency=16)
        assert first.failed == 0
        counted = totals(url)
        assert counted["success"] == 200 and counted["normal"] == 400 and counted["items_count"] == 600
        assert counted["last_customers"] in ([1500.0], [300.0])  # one series, not one per worker

        victim = worker_pids(server.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in worker_pids(server.pid) and len(worker_pids(server.pid)) == 2,
                   timeout=60, what="gunicorn to replace the killed worker")
        wait_until(lambda: httpx.get(f"{url}/ready").status_code == 200, what="ready again")
        second = send_load(url, 300, every_nth_success=3, concurrency=16)
        assert second.failed == 0
        counted = totals(url)
        # The dead worker's counts are still in the sum: nothing lost, nothing doubled.
        assert counted["success"] == 300 and counted["normal"] == 600 and counted["items_count"] == 900
        assert_exposition_is_clean(lambda accept: httpx.get(f"{url}/metrics", headers=accept))


def test_metrics_on_a_port_of_their_own(tmp_path):
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    with running(["serve", "--port", str(port), "--metrics-port", str(metrics_port)], ready_url=f"{url}/ready"):
        assert httpx.post(f"{url}/predict", json={"items_count": 1, "customers_count": 2}).status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 404
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'modelmon_feature_value_count{feature="items_count",model="stores"} 1.0' in text
        assert_exposition_is_clean(lambda accept: httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", headers=accept))


def test_workers_with_metrics_on_their_own_port(tmp_path):
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port), "--workers", "2", "--multiproc-dir", str(tmp_path / "mp"),
            "--metrics-port", str(metrics_port)]
    with running(args, ready_url=f"{url}/ready", timeout=120) as server:
        wait_until(lambda: len(worker_pids(server.pid)) == 2, what="two workers")
        assert send_load(url, 100, every_nth_success=4, concurrency=8).failed == 0
        assert httpx.get(f"{url}/metrics").status_code == 404
        counted = totals(f"http://127.0.0.1:{metrics_port}")
        assert counted["success"] == 25 and counted["normal"] == 75
        assert_exposition_is_clean(lambda accept: httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", headers=accept))


def test_a_stale_metric_folder_is_not_added_in(tmp_path):
    """The folder of an earlier run still holds its workers' counts: a new run empties it."""
    folder = tmp_path / "mp"
    for _ in range(2):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with running(["serve", "--port", str(port), "--workers", "2", "--multiproc-dir", str(folder)],
                     ready_url=f"{url}/ready", timeout=120) as server:
            wait_until(lambda: len(worker_pids(server.pid)) == 2, what="two workers")
            assert send_load(url, 40, every_nth_success=4, concurrency=4).failed == 0
            counted = totals(url)
            assert counted["success"] == 10 and counted["normal"] == 30  # this run's only, both times
        assert any(folder.glob("*.db"))  # the first run left its files behind

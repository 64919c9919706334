"""Exact counts under load, with 1 and 4 workers, in /metrics and in Prometheus.

Marked slow: `make test-slow` runs it (CI too). It prints the figures recorded in RELIABILITY.md.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import free_port, running, wait_until
from .load import scrape_seconds, send_load
from .test_workers import worker_pids

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("prometheus"), reason="Prometheus is not installed"),
]
REQUESTS = int(os.environ.get("MODELMON_LOAD_REQUESTS", "100000"))
SCRAPE_BOUND = 0.1  # seconds: a generous bound on one /metrics scrape, idle or loaded


def summed(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {"predictions": 0.0, "predict_count": 0.0, "value_count": 0.0, "info": [],
                           "reference": {}}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text):
        for s in family.samples:
            if s.name == "modelmon_model_info":
                out["info"].append(s.value)
            elif s.name in ("modelmon_prediction_reference_ratio", "modelmon_feature_quantile_reference"):
                out["reference"][(s.name, tuple(sorted(s.labels.items())))] = s.value
            if s.name == "modelmon_predictions_total":
                out["predictions"] += s.value
                out[s.labels["class"]] = out.get(s.labels["class"], 0) + s.value
            elif s.name == "modelmon_model_predict_seconds_count":
                out["predict_count"] += s.value
            elif s.name == "modelmon_feature_value_count" and s.labels["feature"] == "items_count":
                out["value_count"] += s.value
    return out


def start_prometheus(tmp_path, target: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n"
                      f"  - job_name: modelmon\n    static_configs: [{{targets: ['{target}']}}]\n")
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


@pytest.mark.timeout(1200)  # 100,000 requests take about five minutes on one worker
@pytest.mark.parametrize("workers", [1, 4])
def test_every_request_is_counted_exactly(tmp_path, workers, capsys):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["serve", "--port", str(port), "--workers", str(workers)]
    if workers > 1:
        args += ["--multiproc-dir", str(tmp_path / "mp")]
    prometheus, prom_url = start_prometheus(tmp_path, f"127.0.0.1:{port}")
    try:
        with running(args, ready_url=f"{url}/ready", timeout=180) as server:
            if workers > 1:
                wait_until(lambda: len(worker_pids(server.pid)) == workers, timeout=120, what="all workers")
                time.sleep(3)  # the last worker to fork may still be loading its model
            idle_scrape = scrape_seconds(url)
            result = send_load(url, REQUESTS, every_nth_success=4, concurrency=64)
            counted = summed(url)
            scrape_after = scrape_seconds(url)
            restart_scrape = None
            if workers > 1:
                for pid in worker_pids(server.pid)[:2]:
                    os.kill(pid, signal.SIGKILL)
                wait_until(lambda: len(worker_pids(server.pid)) == workers, timeout=120, what="workers replaced")
                time.sleep(5)
                restart_scrape = scrape_seconds(url)
                assert summed(url)["predictions"] == REQUESTS  # the killed workers' counts remain
            time.sleep(3)  # at least one scrape after the last request

            def in_prometheus():
                body = httpx.get(f"{prom_url}/api/v1/query",
                                 params={"query": 'sum(modelmon_predictions_total{model="stores"})'}).json()
                values = body["data"]["result"]
                return float(values[0]["value"][1]) if values else None

            seen: list[float | None] = []
            try:
                wait_until(lambda: seen.append(in_prometheus()) or seen[-1] == REQUESTS, timeout=30,
                           what="Prometheus to agree")
            except AssertionError:
                pytest.fail(f"Prometheus says {seen[-3:]}, not {REQUESTS}")
    finally:
        prometheus.terminate()
        prometheus.wait(20)
    assert result.failed == 0
    assert counted["predictions"] == REQUESTS == counted["predict_count"] == counted["value_count"]
    assert counted["success"] == result.success and counted["normal"] == REQUESTS - result.success
    assert seen[-1] == REQUESTS
    # Scrapes stay fast, idle and loaded (RELIABILITY.md).
    assert max(idle_scrape, scrape_after, restart_scrape or 0.0) < SCRAPE_BOUND
    # Gauges are not multiplied by the workers: one model_info series at 1, reference gauges
    # exactly the profile's (multiprocess mode `max`, not `sum`).
    assert counted["info"] == [1.0]
    from modelmon.model.reference import ReferenceProfile, profile_path

    from .conftest import REPO

    profile = ReferenceProfile.load(profile_path(REPO / "models" / "stores"))
    reference = counted["reference"]
    for c in profile.classes:
        key = ("modelmon_prediction_reference_ratio", (("class", c.label), ("model", "stores")))
        assert reference[key] == pytest.approx(c.prior, abs=1e-12)
    assert all(0.0 <= v <= 1.0 for v in reference.values())
    with capsys.disabled():  # the figures RELIABILITY.md records, in CI's output too
        print(f"\nworkers={workers}: sent {result.sent}, failed {result.failed}, counted {counted['predictions']:.0f} "
              f"(success {counted['success']:.0f}, normal {counted['normal']:.0f}), in Prometheus {REQUESTS}; "
              f"{result.sent / result.seconds:.0f} requests/s at concurrency 64; /metrics scrape "
              f"{idle_scrape * 1000:.1f} ms idle, {scrape_after * 1000:.1f} ms after load"
              + (f", {restart_scrape * 1000:.1f} ms after 2 workers were killed and replaced" if restart_scrape else ""))

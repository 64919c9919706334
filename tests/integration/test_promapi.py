"""The one Prometheus API client (report, backtest, timeline) against a real Prometheus: an
answer, a query Prometheus refuses, and a server that is not there, each told apart."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from modelmon.targets.promapi import PrometheusAPI, PrometheusAPIError

from .conftest import free_port, wait_until


@pytest.fixture
def prometheus(tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n")
    port = free_port()
    proc = subprocess.Popen(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, 30, what=url)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_answers_refusals_and_absence_are_told_apart(prometheus):
    api = PrometheusAPI(prometheus, timeout=5)
    assert api.query("vector(2)", 0)[0]["value"][1] == "2"
    assert [float(v) for _, v in api.query_range("vector(3)", 0, 10, 5)[0]["values"]] == [3.0, 3.0, 3.0]
    assert api.alerts() == []
    assert api.rule_groups("record") == []
    with pytest.raises(PrometheusAPIError) as refused:
        api.query("sum(", 0)
    assert refused.value.refused and "parse error" in str(refused.value)
    with pytest.raises(PrometheusAPIError) as posted:
        api.post("/api/v1/query_range", {"query": "rate(x[5m]", "start": "0", "end": "10", "step": "5"})
    assert posted.value.refused
    nobody = PrometheusAPI(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(PrometheusAPIError) as absent:
        nobody.alerts()
    assert not absent.value.refused and absent.value.cause == "ConnectError" and nobody.url in str(absent.value)

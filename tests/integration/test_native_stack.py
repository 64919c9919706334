"""`modelmon up --profile demo` for real: app, Prometheus, Alertmanager, Slack stand-in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from modelmon.dashboards import panel_queries
from modelmon.receiver import read_notifications
from modelmon.settings import load_settings

from .conftest import REPO, free_port, running, wait_until
from .traffic import CUSTOMER_DROP, NORMAL, send

pytestmark = pytest.mark.skipif(
    not shutil.which("prometheus") or not (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")),
    reason="Prometheus and Alertmanager are not installed (make test installs them)",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    ports = {name: free_port() for name in ("app", "prometheus", "alertmanager", "receiver")}
    env = {f"MODELMON_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    with running(["up", "--profile", "demo", "--run-dir", str(run_dir)], ready_url=f"{urls['alertmanager']}/-/ready",
                 env=env, timeout=90):
        wait_until(lambda: httpx.get(f"{urls['app']}/ready").status_code == 200, what="app ready")
        wait_until(lambda: prom_query(urls["prometheus"], 'up{job="modelmon"} == 1'), timeout=30,
                   what="Prometheus scraping the app")
        yield {"urls": urls, "run_dir": run_dir, "settings": load_settings("demo")}


def prom_query(prometheus: str, expr: str) -> list[dict]:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def firing(prometheus: str) -> set[str]:
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


def test_normal_then_customer_drop(stack):
    urls, run_dir, settings = stack["urls"], stack["run_dir"], stack["settings"]
    notifications = run_dir / "notifications.jsonl"

    # Normal traffic for longer than every window and `for`: nothing fires, nothing is sent.
    send(urls["app"], NORMAL, seconds=40, seed=1)
    assert firing(urls["prometheus"]) == set()
    rate = prom_query(urls["prometheus"], 'model:modelmon_positive_class:ratio_rate30s{model="stores"}')
    assert 0.2 < float(rate[0]["value"][1]) < 0.32
    assert read_notifications(notifications) == []

    # Customers drop: the success rate falls under 20 % and the workshop's alert fires.
    started = time.monotonic()
    send(urls["app"], CUSTOMER_DROP, seconds=120, seed=2,
         until=lambda: "ModelLowPositiveRate" in firing(urls["prometheus"]))
    assert "ModelLowPositiveRate" in firing(urls["prometheus"]), "ModelLowPositiveRate did not fire within 120 s"
    fired_after = time.monotonic() - started

    def delivered():
        return [n for n in read_notifications(notifications) if "ModelLowPositiveRate" in n["title"]]

    [note, *_] = wait_until(delivered, timeout=30, what="the Slack notification")
    assert note["channel"] == settings.slack_channel
    assert "stores" in note["title"] and note["title"].startswith("[FIRING")
    assert "'success' rate" in note["text"] and "under 20%" in note["text"]
    assert note["payload"]["attachments"][0]["color"] == "danger"
    print(f"ModelLowPositiveRate fired {fired_after:.0f} s after the customer drop")

    # Every panel of the generated dashboard has data in the real Prometheus.
    board = json.loads((run_dir / "grafana" / "dashboards" / "modelmon-stores.json").read_text())
    empty = [title for title, expr in panel_queries(board, "stores", settings.rate_window)
             if not prom_query(urls["prometheus"], expr)]
    assert not empty, f"panels without data: {empty}"


def test_missing_binary_is_one_sentence(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    result = subprocess.run([sys.executable, "-m", "modelmon", "up", "--run-dir", str(tmp_path / "run")],
                            cwd=REPO, capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": str(bin_dir)})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "prometheus is not installed" in result.stderr and "apt-get install" in result.stderr


def test_port_in_use_is_one_sentence(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "modelmon", "up", "--run-dir", str(tmp_path / "run")],
                                cwd=REPO, capture_output=True, text=True, timeout=60,
                                env={**os.environ, "MODELMON_PROMETHEUS_PORT": str(port)})
    assert result.returncode == 2
    assert f"Port {port}" in result.stderr and "MODELMON_PROMETHEUS_PORT" in result.stderr


def test_a_dying_child_stops_the_whole_stack(tmp_path):
    """If the app dies, `up` stops Prometheus, Alertmanager and the receiver and says why."""
    ports = {name: free_port() for name in ("app", "prometheus", "alertmanager", "receiver")}
    env = {**os.environ, **{f"MODELMON_{k.upper()}_PORT": str(v) for k, v in ports.items()}}
    up = subprocess.Popen([sys.executable, "-m", "modelmon", "up", "--profile", "demo", "--run-dir", str(tmp_path)],
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{ports['alertmanager']}/-/ready").status_code == 200,
                   timeout=90, what="the stack")
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{ports['app']}/ready").status_code == 200, what="app")
        subprocess.run(["pkill", "-KILL", "-f", f"modelmon serve .* --port {ports['app']}"], check=True)
        _, stderr = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 2
    assert "app exited" in stderr and "app.log" in stderr
    for name in ("prometheus", "alertmanager", "receiver"):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{ports[name]}/", timeout=2)

"""`modelmon report` from a real Prometheus after a short real scenario."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.settings import load_settings
from modelmon.simulate.scenarios import load_scenario
from modelmon.simulate.simulator import Simulator
from modelmon.targets.layout import APP, PROMETHEUS
from modelmon.targets.native import NativeStack

from .conftest import REPO, free_port, wait_until

pytestmark = pytest.mark.skipif(not shutil.which("prometheus"), reason="Prometheus is not installed")
MODEL = REPO / "models" / "stores"


def test_report_has_data_in_every_panel_and_the_alert_that_fired(tmp_path):
    settings = load_settings("demo").replace(
        **{f"{n}_port": free_port() for n in ("app", "prometheus", "alertmanager", "receiver")})
    profile = ReferenceProfile.load(profile_path(MODEL))
    with NativeStack(MODEL, profile, settings, tmp_path / "run") as stack:
        result = Simulator(stack.url(APP), load_scenario("customer-drop").lasting(80), seed=9,
                           show_progress=False).run()
        import httpx

        def fired():
            alerts = httpx.get(f"{stack.url(PROMETHEUS)}/api/v1/alerts").json()["data"]["alerts"]
            return any(a["labels"]["alertname"] == "ModelLowPositiveRate" and a["state"] == "firing" for a in alerts)

        wait_until(fired, timeout=60, what="ModelLowPositiveRate")
        time.sleep(2)
        phases = tmp_path / "phases.json"
        phases.write_text(json.dumps([{"name": p.name, "at": p.started_at} for p in result.phases]))
        out = tmp_path / "report"
        done = subprocess.run(
            # No --profile and no --dashboard: the report reads the demo stack's windows from its
            # Prometheus (it used to assume the demo profile and drew empty panels elsewhere).
            [sys.executable, "-m", "modelmon", "report", "--prometheus", stack.url(PROMETHEUS), "--since", "3m",
             "--phases", str(phases), "--out", str(out)],
            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    written = json.loads((out / "report.json").read_text())
    panels = written["panels"]
    board = json.loads((tmp_path / "run" / "grafana" / "dashboards" / "modelmon-stores.json").read_text())
    assert [p["title"] for p in panels] == [p["title"] for p in board["panels"] if p["type"] != "row"]
    empty = [p["title"] for p in panels if not any(s["points"] for s in p["series"])]
    assert not empty, f"panels without data points: {empty}"
    for panel in panels:
        png = out / panel["image"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 3000
    assert "ModelLowPositiveRate" in {a["alert"] for a in written["alerts"]}
    page = (out / "report.html").read_text()
    assert "<td>ModelLowPositiveRate</td>" in page and page.count("data:image/png;base64,") == len(panels)
    assert [p["name"] for p in written["phases"]] == ["normal", "customer drop"]


def test_report_without_prometheus_is_one_sentence(tmp_path):
    done = subprocess.run([sys.executable, "-m", "modelmon", "report", "--prometheus", f"http://127.0.0.1:{free_port()}",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Could not query Prometheus" in done.stderr
    assert done.stderr.strip().count("\n") == 0

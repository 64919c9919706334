"""`modelmon up --profile demo` for real: app, Prometheus, Alertmanager, Slack stand-in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from modelmon.rules.series import Names
from modelmon.simulate.receiver import read_notifications
from modelmon.simulate.scenarios import load_scenario
from modelmon.simulate.timeline import detections, phase_at
from modelmon.targets.dashboards import panel_queries

from .conftest import (
    REPO,
    TRAINING_INPUTS,
    concept_drift,
    free_port,
    native_stack,
    play,
    prom_query,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    not shutil.which("prometheus") or not (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")),
    reason="Prometheus and Alertmanager are not installed (make test installs them)",
)


def test_concept_drift_then_customer_drop(tmp_path_factory):
    """Same inputs, different truth: only the labels coming back can tell. ModelQualityDrop
    fires, and ModelConceptDrift (labels far under the calibrated probabilities' estimate),
    while every drift alert and ModelEstimatedQualityDrop stay quiet. Then customers drop: the
    workshop's alert fires, and the estimate agrees with the labels again."""
    # The phase takes the scenario's feedback, so labels follow the training rule again.
    drop = {"name": "customer drop", "duration": "40s", "features": {
        **TRAINING_INPUTS, "customers_count": {"normal": {"mean": 550, "sd": 150}}}}
    scenario = concept_drift("concept drift, then customer drop", rate=20, share=0.5, delay=(1, 4),
                             durations=("35s", "40s"), later_phases=[drop])
    with native_stack(tmp_path_factory, quality_window="30s") as stack:
        urls, settings = stack["urls"], stack["settings"]
        result, events = play(stack, scenario, seed=2, wait_for=("ModelLowPositiveRate", "model=stores"))
        assert all(p.labels_accepted == p.labels_sent > 200 for p in result.phases)
        found, false_alarms = detections(result.phases, events)
        assert false_alarms == [], f"alerts fired on normal traffic: {false_alarms}"
        drift_phase = result.phases[1]
        moved = {e.alert for e in events if e.kind in ("pending", "firing")
                 and phase_at(result.phases, e.at) is drift_phase}
        assert moved == {"ModelQualityDrop", "ModelConceptDrift"}, f"during the concept drift: {moved}"
        quality = next(d for d in found if d.alert == "ModelQualityDrop")
        assert quality.phase == "concept drift"
        concept = next(d for d in found if d.alert == "ModelConceptDrift")
        assert concept.phase == "concept drift"
        assert not [e for e in events if e.alert == "ModelEstimatedQualityDrop"]
        # At the end of the drop (its 40 s hold the whole 30 s window): estimate and labels agree.
        n, end = Names.of(settings), result.phases[-1].ended_at

        def at_end(expr: str) -> float:
            body = httpx.get(f"{urls['prometheus']}/api/v1/query", params={"query": expr, "time": end}).json()
            return float(body["data"]["result"][0]["value"][1])

        labels, estimated, realized = (at_end(x) for x in (n.labels_increase, n.estimated_accuracy, n.accuracy))
        assert labels >= 200 and abs(estimated - realized) <= 0.03, (labels, estimated, realized)
        low = next(d for d in found if d.alert == "ModelLowPositiveRate")
        assert low.phase == "customer drop"
        print(f"ModelQualityDrop fired {quality.to_firing:.1f} s into the concept drift (notified at "
              f"{quality.to_notified}), ModelConceptDrift {concept.to_firing:.1f} s; ModelLowPositiveRate "
              f"{low.to_firing:.1f} s after the drop; then accuracy estimated {estimated:.3f}, realized {realized:.3f} "
              f"on {labels:.0f} labels")

        notes = read_notifications(stack["run_dir"] / "notifications.jsonl")
        quality_note = next(n for n in notes if "ModelQualityDrop" in n["title"])
        assert "accuracy" in quality_note["text"] and "under 80%" in quality_note["text"]
        note = next(n for n in notes if "ModelLowPositiveRate" in n["title"])
        assert note["channel"] == settings.slack_channel
        assert "stores" in note["title"] and note["title"].startswith("[FIRING")
        assert "'success' rate" in note["text"] and "under 20%" in note["text"]
        assert note["payload"]["attachments"][0]["color"] == "danger"
        # The receiver hands the alert on as data, from the fields Alertmanager filled in.
        assert (note["alertname"], note["status"], note["labels"]) == ("ModelLowPositiveRate", "firing",
                                                                      {"model": "stores"})

        # Every panel of the generated dashboard has data in the real Prometheus.
        board = json.loads((stack["run_dir"] / "grafana" / "dashboards" / "modelmon-stores.json").read_text())
        empty = [title for title, expr in panel_queries(board, "stores")
                 if not prom_query(urls["prometheus"], expr)]
        assert not empty, f"panels without data: {empty}"


# Minutes of live traffic: with the other walk-throughs in `make test-slow` (the quarter hour of make test).
@pytest.mark.slow
def test_workshop_faulty_phase_fires_feature_drift_for_items(tmp_path_factory):
    with native_stack(tmp_path_factory) as stack:
        scenario = load_scenario("workshop").faster(10)  # 30 s normal, 30 s faulty, 100 requests/min x 10
        result, events = play(stack, scenario, seed=5,
                              wait_for=("ModelFeatureDrift", "feature=items_count, model=stores"))
        found, false_alarms = detections(result.phases, events)
        assert false_alarms == [], f"alerts fired on normal traffic: {false_alarms}"
        drift = next(d for d in found if d.alert == "ModelFeatureDrift" and "items_count" in d.detail)
        print(f"ModelFeatureDrift(items_count) fired {drift.to_firing:.1f} s after the faulty phase began")
        notes = [n for n in read_notifications(stack["run_dir"] / "notifications.jsonl")
                 if "ModelFeatureDrift" in n["title"]]
        assert notes and "items_count" in notes[0]["text"]


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
        subprocess.run(["pkill", "-KILL", "-f", f"modelmon serve .* --settings {tmp_path}/"], check=True)
        _, stderr = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 2
    assert "app exited" in stderr and "app.log" in stderr
    for name in ("prometheus", "alertmanager", "receiver"):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{ports[name]}/", timeout=2)


def test_children_never_outlive_a_program_that_forgets_to_stop(tmp_path):
    ports = {name: free_port() for name in ("app", "prometheus", "alertmanager", "receiver")}
    program = (
        "from pathlib import Path\n"
        "from modelmon.targets.native import NativeStack\n"
        "from modelmon.model.reference import ReferenceProfile, profile_path\n"
        "from modelmon.settings import load_settings\n"
        f"settings = load_settings('demo').replace(**{ {f'{k}_port': v for k, v in ports.items()} !r})\n"
        f"model = Path({str(REPO / 'models' / 'stores')!r})\n"
        f"NativeStack(model, ReferenceProfile.load(profile_path(model)), settings, Path({str(tmp_path)!r})).start()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for port in ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)

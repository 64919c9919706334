"""`modelmon backtest` end to end: real promtool backfills, a real Prometheus evaluates the
generated rules over simulated time; and the same scenario played live must fire the same
alerts at the same times."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modelmon.backtest.result import grace_of
from modelmon.backtest.run import backtest, backtest_log
from modelmon.monitoring.predictionstore import LoggedRequest, PredictionStore, store_url
from modelmon.settings import load_settings
from modelmon.simulate.scenarios import load_scenario, parse_scenario

from .conftest import REPO, TRAINING_INPUTS, native_stack, play, wait_until

pytestmark = pytest.mark.timeout(600)


def test_customer_drop_at_the_workshops_rate_fires_within_minutes_and_not_before(stores_model, stores_profile):
    """Production settings, 100 requests a minute: the customers' drift pages within the
    issue's 3 minutes; the success rate within 2.5 (its target is 2: BENCHMARKS.md says what it
    trades); nothing fires in the normal phase."""
    settings = load_settings("production", env={})
    scenario = load_scenario("customer-drop").at_rate(100 / 60)
    result = backtest(stores_model, stores_profile, scenario, settings, seed=1)
    delays = {d["alert"]: d["delay_seconds"] for d in result.detections()}
    assert delays["ModelLowPositiveRate"] <= 150
    assert delays["ModelFeatureDrift(customers_count)"] <= 180
    assert result.false_alarms(grace_of(settings))["by_alert"] == {}
    assert result.rows == pytest.approx(1000, rel=0.1)


def test_the_command_writes_its_table_json_and_timeline(tmp_path):
    done = subprocess.run([sys.executable, "-m", "modelmon", "backtest", "customer-drop", "--rate", "100/min",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ModelLowPositiveRate" in done.stdout and "False alarms" in done.stdout
    summary = json.loads((tmp_path / "backtest.json").read_text())
    assert {d["alert"] for d in summary["detections"]} >= {"ModelLowPositiveRate"}
    assert (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_replay_of_the_live_runs_log_fires_what_the_live_stack_fired(tmp_path_factory, stores_model,
                                                                       stores_profile):
    """The demo settings (scrape and evaluation every second): a customer drop played live against
    the native stack, then the run's own prediction log through `backtest --log`. The same rows at
    the same instants, so the same alerts must fire, each within one scrape, one evaluation and
    the watcher's half-second poll of the live firing (the live clock's phases are random, the
    backtest's grid is not). A scenario backtest draws other rows, so only the log can be held
    to seconds."""
    scenario = parse_scenario({"name": "agree", "rate": 20, "phases": [
        {"name": "normal", "healthy": True, "duration": "60s", "features": TRAINING_INPUTS},
        {"name": "customer drop", "duration": "60s", "features": {
            "items_count": {"normal": {"mean": 1782, "sd": 300}},
            "customers_count": {"normal": {"mean": 550, "sd": 150}}}},
    ]}, "test")
    settings = load_settings("demo", env={})
    with native_stack(tmp_path_factory) as stack:
        result, events = play(stack, scenario, seed=3, wait_for=("ModelLowPositiveRate", "model=stores"))
        log = stack["run_dir"] / "predictions.sqlite"
        store = PredictionStore(store_url(str(log)))
        try:
            wait_until(lambda: len(store.history("stores")) == sum(p.ok for p in result.phases),
                       what="every prediction in the log")
        finally:
            store.close()
    drop = next(p for p in result.phases if p.name == "customer drop")
    live: dict[str, float] = {}
    for e in sorted(events, key=lambda e: e.at):
        if e.kind == "firing" and e.at >= drop.started_at:
            labels = dict(part.split("=", 1) for part in e.detail.split(", ") if "=" in part)
            shown = ", ".join(v for k, v in sorted(labels.items()) if k != "model")
            live.setdefault(e.alert + (f"({shown})" if shown else ""), e.at)
    replayed = backtest_log(stores_model, stores_profile, str(log), settings)
    assert replayed.origin is not None
    offline: dict[str, float] = {}
    for episode in sorted(replayed.episodes, key=lambda e: e.fired):
        if replayed.origin + episode.fired >= drop.started_at:
            offline.setdefault(episode.series, replayed.origin + episode.fired)
    assert set(offline) == set(live), (offline, live)
    scrape, evaluation, poll = 1.0, 1.0, 0.5
    for alert, at in offline.items():
        assert abs(live[alert] - at) <= scrape + evaluation + poll, (alert, live[alert] - drop.started_at,
                                                                     at - drop.started_at)


def _log_of_a_customer_drop(path, model, profile) -> None:
    """Twenty minutes of logged predictions at 100 a minute, the customers dropping after ten,
    half of them labelled 30 s later, written as the server's prediction log writes them."""
    import numpy as np

    rng = np.random.default_rng(7)
    start, n = 1_780_000_000.0, 2000
    at = start + np.sort(rng.random(n)) * 1200
    customers = np.where(at - start < 600, rng.normal(786, 265, n), rng.normal(550, 150, n)).round()
    items = rng.normal(1782, 300, n).round()
    columns = {"items_count": items.tolist(), "customers_count": customers.tolist()}
    labels = [{0: "normal", 1: "success"}[v] for v in model.predict_columns(model.columns(columns)).values.tolist()]
    truth = np.where(customers + rng.normal(0, 35, n) > 965, "success", "normal")
    store = PredictionStore(store_url(path))
    store.write([LoggedRequest(f"r{i}", profile.model, "1", float(at[i]),
                               {"items_count": [int(items[i])], "customers_count": [int(customers[i])]}, [labels[i]])
                 for i in range(n)])
    for i in range(0, n, 2):
        store.label("stores", f"r{i}", str(truth[i]), float(at[i]) + 30)
    store.close()


def test_a_prediction_log_replays_under_the_settings_in_force_and_a_candidate(tmp_path, stores_model,
                                                                            stores_profile):
    """`backtest --log`: the logged drop fires ModelLowPositiveRate within three minutes of it;
    a candidate settings file with a 1 % floor would have stayed quiet."""
    log = tmp_path / "predictions.sqlite"
    _log_of_a_customer_drop(log, stores_model, stores_profile)
    result = backtest_log(stores_model, stores_profile, str(log), load_settings("production", env={}))
    assert result.rows == 2000 and result.labels == 1000
    low = [e for e in result.episodes if e.alert == "ModelLowPositiveRate"]
    assert low and 600 < low[0].fired <= 600 + 180
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("positive_rate_floor: 0.01\n")
    quiet = backtest_log(stores_model, stores_profile, str(log), load_settings("production", candidate, env={}))
    assert not [e for e in quiet.episodes if e.alert == "ModelLowPositiveRate"]
    done = subprocess.run([sys.executable, "-m", "modelmon", "backtest", "--log", str(log), "--settings",
                           str(candidate)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "prediction log" in done.stdout

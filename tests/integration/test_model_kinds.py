"""A regressor and a model with categorical and missing inputs on the real native stack.

Each runs `modelmon up --profile demo` on its own model, plays a scenario whose phases move
one thing at a time, and checks the alert that should fire for each phase fires (and nothing
fires on normal traffic), then that every panel of the model's dashboard has data. Minutes
of traffic each: in `make test-slow`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from modelmon.simulate.scenarios import parse_scenario
from modelmon.simulate.timeline import detections
from modelmon.targets.dashboards import panel_queries

from ..kinds import COUNTRIES, build_categorical, build_regressor
from .conftest import REPO, native_stack, play, prom_query

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not shutil.which("prometheus") or not (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")),
        reason="Prometheus and Alertmanager are not installed (make test installs them)",
    ),
]

HOUSES = {"sqft": {"normal": {"mean": 120, "sd": 35}}, "rooms": {"uniform": {"low": 0.5, "high": 6.5}}}
PRICE = {"linear": {"sqft": 1500, "rooms": 8000}, "noise": 20000}  # the training truth (tests/kinds.py)


def _fired(found, alert: str, detail: str, phase: str) -> float:
    hit = next((d for d in found if d.alert == alert and d.detail == detail), None)
    assert hit is not None, f"{alert} ({detail}) did not fire; fired: {[(d.alert, d.detail) for d in found]}"
    assert hit.phase == phase, f"{alert} fired in {hit.phase!r}, not {phase!r}"
    return hit.to_firing


def _panels_have_data(stack, model: str) -> None:
    board = json.loads((stack["run_dir"] / "grafana" / "dashboards" / f"modelmon-{model}.json").read_text())
    empty = [title for title, expr in panel_queries(board, model) if not prom_query(stack["urls"]["prometheus"], expr)]
    assert not empty, f"panels without data: {empty}"


def test_a_regressor_fires_input_and_prediction_drift_then_its_mae_quality_drop(tmp_path_factory):
    model = build_regressor(tmp_path_factory.mktemp("houses"))
    scenario = parse_scenario({
        "name": "houses", "rate": 20,
        "feedback": {"share": 0.5, "delay": {"uniform": {"low": 1, "high": 3}}, "truth": PRICE},
        "phases": [
            {"name": "normal", "duration": "40s", "features": HOUSES},
            # Bigger houses: the inputs and so the predicted prices move; the truth rule is the
            # one the model learnt, so its error does not.
            {"name": "bigger houses", "duration": "45s",
             "features": {**HOUSES, "sqft": {"normal": {"mean": 220, "sd": 35}}}},
            # The same inputs as in training, but prices moved: only the labels can tell.
            {"name": "prices moved", "duration": "60s", "features": HOUSES,
             "feedback": {"truth": {**PRICE, "linear": {"sqft": 2000, "rooms": 8000}, "intercept": 30000}}},
        ],
    }, "houses")
    with native_stack(tmp_path_factory, model=model, quality_window="30s") as stack:
        result, events = play(stack, scenario, seed=3, wait_for=("ModelQualityDrop", "model=houses"))
        found, false_alarms = detections(result.phases, events)
        assert false_alarms == [], f"alerts fired on normal traffic: {false_alarms}"
        drift = _fired(found, "ModelFeatureDrift", "feature=sqft, model=houses", "bigger houses")
        prediction = _fired(found, "ModelPredictionDrift", "model=houses", "bigger houses")
        quality = _fired(found, "ModelQualityDrop", "model=houses", "prices moved")
        assert not any(d.alert == "ModelQualityDrop" and d.phase == "bigger houses" for d in found), \
            "the error rose although the truth had not moved"
        print(f"houses: ModelFeatureDrift(sqft) {drift:.1f} s, ModelPredictionDrift {prediction:.1f} s after the "
              f"inputs moved; ModelQualityDrop {quality:.1f} s after the prices did")
        _panels_have_data(stack, "houses")
        # The report draws the regressor's panels (windows read from its rules) and its alerts.
        out = tmp_path_factory.mktemp("report")
        done = subprocess.run([sys.executable, "-m", "modelmon", "report", "--model", str(model), "--prometheus",
                               stack["urls"]["prometheus"], "--since", "4m", "--out", str(out)],
                              cwd=REPO, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        written = json.loads((out / "report.json").read_text())
        titles = [p["title"] for p in written["panels"]]
        assert "Model error over 30s (ground truth)" in titles and not any("class" in t for t in titles)
        assert "ModelQualityDrop" in {a["alert"] for a in written["alerts"]}


def test_a_categorical_share_shift_and_missing_values_fire_their_alerts(tmp_path_factory):
    model = build_categorical(tmp_path_factory.mktemp("payments"))
    payments = {"country": {"categorical": dict(COUNTRIES)},
                "amount": {"normal": {"mean": 75, "sd": 25}, "missing": 0.1}}
    scenario = parse_scenario({
        "name": "payments", "rate": 20,
        "feedback": {"share": 0.5, "delay": {"uniform": {"low": 1, "high": 3}},
                     "truth": {"linear": {"amount": 0.01, "country=de": -1}, "threshold": 1, "noise": 0.1}},
        "phases": [
            {"name": "normal", "duration": "40s", "features": payments},
            # A new market: Italy's share of the traffic triples, and some countries are new.
            {"name": "new market", "duration": "45s",
             "features": {**payments, "country": {"categorical": {"de": 0.2, "fr": 0.2, "it": 0.5, "es": 0.1}}}},
            # An upstream source stops filling the amount for half the rows.
            {"name": "amount lost", "duration": "45s",
             "features": {**payments, "amount": {"normal": {"mean": 75, "sd": 25}, "missing": 0.5}}},
        ],
    }, "payments")
    with native_stack(tmp_path_factory, model=model) as stack:
        result, events = play(stack, scenario, seed=4, wait_for=("ModelFeatureMissing", "feature=amount, model=payments"))
        found, false_alarms = detections(result.phases, events)
        assert false_alarms == [], f"alerts fired on normal traffic: {false_alarms}"
        shift = _fired(found, "ModelFeatureDrift", "feature=country, model=payments", "new market")
        missing = _fired(found, "ModelFeatureMissing", "feature=amount, model=payments", "amount lost")
        unseen = prom_query(stack["urls"]["prometheus"], 'modelmon_feature_unseen_category_total{feature="country"}')
        assert unseen and float(unseen[0]["value"][1]) > 0, "Spain was never in training: counted as unseen"
        print(f"payments: ModelFeatureDrift(country) {shift:.1f} s after the shares moved; ModelFeatureMissing "
              f"{missing:.1f} s after the amount went missing")
        _panels_have_data(stack, "payments")

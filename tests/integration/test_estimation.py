"""Estimated quality (calibrated probabilities, no labels) against the labels, through the
real server code and a real Prometheus evaluating the generated rules: `backtest` plays each
scenario on a simulated clock, so hours of 5-minute windows take seconds."""

from __future__ import annotations

import pytest

from modelmon.backtest.run import backtest
from modelmon.settings import load_settings
from modelmon.simulate.scenarios import load_scenario

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]  # 25 s of backtests: with `make test-slow`

FIVE_MINUTES = {"MODELMON_QUALITY_WINDOW": "5m"}


@pytest.mark.parametrize("name, hours, rate", [("customer-drop", 1.0, None), ("gradual-drift", 1.5, None),
                                               ("workshop", 1.0, 20.0)])
def test_where_only_the_inputs_move_the_estimate_stays_within_3_points_of_the_labels(
        name, hours, rate, stores_model, stores_profile):
    """Every back-to-back 5-minute window with at least 200 labels, in every phase. The
    workshop at 20 requests a second (3,000 labels a window): at its own 100 a minute (250)
    the realized accuracy near 89 % has a sampling deviation of 2 points by itself
    (BENCHMARKS.md gives both)."""
    scenario = load_scenario(name).lasting(hours * 3600)
    if rate is not None:
        scenario = scenario.at_rate(rate)
    result = backtest(stores_model, stores_profile, scenario, load_settings("production", env=FIVE_MINUTES), seed=1)
    error = result.estimation_error(min_labels=200)
    assert set(error) == {p.name for p in result.phases}, error
    for phase, gap in error.items():
        assert gap["windows"] >= 5, (phase, gap)
        assert gap["worst_abs"] <= 0.03, (phase, gap)
    assert not [e for e in result.episodes if e.alert in ("ModelConceptDrift", "ModelEstimatedQualityDrop")]


def test_concept_drift_fires_model_concept_drift_and_not_the_estimated_drop(stores_model, stores_profile):
    """Same inputs, a new truth: the probabilities still promise ~96 %, the labels give ~61 %."""
    result = backtest(stores_model, stores_profile, load_scenario("concept-drift"),
                      load_settings("production", env=FIVE_MINUTES), seed=1)
    fired = {d["alert"]: d["delay_seconds"] for d in result.detections()}
    assert "ModelConceptDrift" in fired and fired["ModelConceptDrift"] <= 300
    assert "ModelEstimatedQualityDrop" not in fired
    assert not [e for e in result.episodes if e.fired < result.phases[0].end]  # quiet before the change
    gap = result.estimation_error()["concept drift"]
    assert gap["mean_signed"] > 0.25  # the estimate far above the labels: what the alert reads


def test_an_estimate_under_the_floor_fires_before_any_label(stores_model, stores_profile):
    """Stores pushed to the decision boundary (customers ~ N(965, 60)): the model is unsure of
    most, its calibrated probabilities say so, and ModelEstimatedQualityDrop fires with no
    label sent at all."""
    from modelmon.simulate.scenarios import parse_scenario

    boundary = parse_scenario({"name": "boundary", "rate": 20, "phases": [
        {"name": "normal", "healthy": True, "duration": "10m", "features": {
            "items_count": {"normal": {"mean": 1782, "sd": 300}},
            "customers_count": {"normal": {"mean": 786, "sd": 265}}}},
        {"name": "at the boundary", "duration": "10m", "features": {
            "items_count": {"normal": {"mean": 1782, "sd": 300}},
            "customers_count": {"normal": {"mean": 965, "sd": 40}}}},
    ]}, "test")
    result = backtest(stores_model, stores_profile, boundary, load_settings("production", env=FIVE_MINUTES), seed=1)
    assert result.labels == 0
    fired = {d["alert"]: d["delay_seconds"] for d in result.detections()}
    assert "ModelEstimatedQualityDrop" in fired, result.table(0)
    assert not [e for e in result.episodes if e.alert == "ModelEstimatedQualityDrop" and e.fired < 600]

import numpy as np
import pytest

from modelmon.simulate.scenarios import (
    Distribution,
    ScenarioError,
    TruthRule,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
)


def test_builtin_scenarios_parse_and_fit_the_stores_model():
    names = builtin_scenarios()
    assert {"normal", "workshop", "customer-drop", "gradual-drift", "bad-inputs", "spike", "demo"} <= set(names)
    for name in names:
        scenario = load_scenario(name)
        scenario.check_features(["items_count", "customers_count"])
        assert scenario.duration > 0 and all(p.rate > 0 for p in scenario.phases)


def test_workshop_is_the_workshops_generator():
    workshop = load_scenario("workshop")
    assert [(p.name, p.duration, round(p.rate * 60)) for p in workshop.phases] == [
        ("normal", 300, 100), ("faulty", 300, 100)]
    faulty = workshop.phases[1].features
    assert faulty["items_count"].params == {"mean": (300, 300), "sd": (100, 100)}
    assert faulty["customers_count"].params == {"mean": (1000, 1000), "sd": (100, 100)}


def test_customer_drop_and_spike_and_bad_inputs():
    drop = load_scenario("customer-drop").phases[1].features["customers_count"]
    assert drop.params == {"mean": (550, 550), "sd": (150, 150)}
    spike = load_scenario("spike")
    assert spike.phases[1].rate == 10 * spike.phases[0].rate
    assert load_scenario("bad-inputs").phases[1].invalid_share == 0.25
    gradual = load_scenario("gradual-drift").phases[1].features["customers_count"]
    assert gradual.params["mean"] == (786, 450)


def test_a_mismatched_scenario_is_refused_with_the_reason():
    with pytest.raises(ScenarioError, match=r"lacks petal_width_cm .* has items_count"):
        load_scenario("normal").check_features(["petal_width_cm", "customers_count"])


def test_distributions_sample_what_they_say():
    rng = np.random.default_rng(0)
    progress = np.linspace(0, 1, 20000, endpoint=False)
    normal = Distribution.parse({"normal": {"mean": 10, "sd": 2}}, "x").sample(rng, progress)
    assert abs(normal.mean() - 10) < 0.1 and abs(normal.std() - 2) < 0.1
    uniform = Distribution.parse({"uniform": {"low": 0, "high": 4}}, "x").sample(rng, progress)
    assert uniform.min() >= 0 and uniform.max() <= 4 and abs(uniform.mean() - 2) < 0.1
    assert set(Distribution.parse({"constant": 7}, "x").sample(rng, progress)) == {7}
    mix = Distribution.parse({"mixture": [{"weight": 3, "constant": 0}, {"weight": 1, "constant": 1}]}, "x")
    assert abs(mix.sample(rng, progress).mean() - 0.25) < 0.02
    sliding = Distribution.parse({"normal": {"mean": {"from": 0, "to": 100}, "sd": 1}}, "x").sample(rng, progress)
    assert abs(sliding[:1000].mean() - 2.5) < 0.5 and abs(sliding[-1000:].mean() - 97.5) < 0.5


@pytest.mark.parametrize("raw, message", [
    ({"phases": [{"duration": "1m", "features": {"x": {"gamma": {}}}}]}, "unknown distribution 'gamma'"),
    ({"phases": [{"duration": "ten", "features": {"x": {"constant": 1}}}]}, "not a duration"),
    ({"phases": [{"duration": "1m", "rate": "fast", "features": {"x": {"constant": 1}}}]}, "rate 'fast'"),
    ({"phases": [{"duration": "1m", "features": {"x": {"normal": {"mean": 1}}}}]}, "normal takes mean, sd"),
    ({"phases": [{"duration": "1m", "invalid_share": 2, "features": {"x": {"constant": 1}}}]}, "invalid_share"),
    ({"name": "x"}, "needs a name and a list of phases"),
])
def test_bad_scenarios_say_where(raw, message):
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(raw, "mine.yaml")


def test_speed_and_duration_keep_the_requests():
    scenario = load_scenario("customer-drop")
    fast = scenario.faster(10)
    assert [p.requests for p in fast.phases] == [p.requests for p in scenario.phases]
    assert fast.duration == scenario.duration / 10
    short = scenario.lasting(60)
    assert short.duration == pytest.approx(60) and short.phases[0].rate == scenario.phases[0].rate


def test_unknown_builtin_and_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="No built-in scenario 'nope'"):
        load_scenario("nope")
    with pytest.raises(ScenarioError, match="No scenario file"):
        load_scenario(tmp_path / "x.yaml")


def test_concept_drift_changes_the_truth_not_the_inputs():
    scenario = load_scenario("concept-drift")
    normal, drifted = scenario.phases
    assert normal.features == drifted.features
    assert normal.feedback.share == drifted.feedback.share == 0.5
    assert normal.feedback.delay == drifted.feedback.delay  # inherited from the scenario
    assert (normal.feedback.truth.threshold, drifted.feedback.truth.threshold) == (965, 700)
    rng = np.random.default_rng(0)
    customers = np.array([600.0, 800.0, 1200.0])
    assert normal.feedback.truth.actual({"customers_count": customers}, rng) == [0, 0, 1]
    assert drifted.feedback.truth.actual({"customers_count": customers}, rng) == [0, 1, 1]


def test_speed_shortens_label_delays_too():
    fast = load_scenario("concept-drift").faster(10)
    assert fast.phases[0].feedback.delay.params == {"low": (0.2, 0.2), "high": (1.0, 1.0)}


@pytest.mark.parametrize("feedback, message", [
    ({"share": 0.5}, "needs a truth rule"),
    ({"share": 2, "truth": {"linear": {"x": 1}, "threshold": 0}}, "between 0 and 1"),
    ({"truth": {"threshold": 0}}, "a truth rule is"),
    ({"truth": {"linear": {"x": 1}, "threshold": 0, "bias": 1}}, "unknown truth rule key 'bias'"),
    ({"shares": 0.5}, "unknown feedback key 'shares'"),
])
def test_bad_feedback_is_named(feedback, message):
    raw = {"feedback": feedback, "phases": [{"duration": "1s", "features": {"x": {"constant": 1}}}]}
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(raw, "s.yaml")


def test_a_truth_rule_on_an_unknown_feature_does_not_fit():
    raw = {"feedback": {"truth": {"linear": {"y": 1}, "threshold": 0}},
           "phases": [{"duration": "1s", "features": {"x": {"constant": 1}}}]}
    with pytest.raises(ScenarioError, match="has y which the model does not take"):
        parse_scenario(raw, "s.yaml").check_features(["x"])


def test_categorical_shares_slide_and_missing_values_appear():
    dist = Distribution.parse({"categorical": {"de": {"from": 1.0, "to": 0.0}, "fr": {"from": 0.0, "to": 1.0}},
                               "missing": 0.2}, "test")
    rng = np.random.default_rng(0)
    values = dist.sample(rng, np.linspace(0, 1, 20_000))
    first, last = values[:2000], values[-2000:]
    assert np.mean([v is None for v in values]) == pytest.approx(0.2, abs=0.01)
    assert {v for v in first if v is not None} <= {"de", "fr"}
    assert np.mean([v == "de" for v in first if v is not None]) > 0.9
    assert np.mean([v == "fr" for v in last if v is not None]) > 0.9


def test_a_truth_rule_without_threshold_is_a_number_and_indicators_count_categories():
    rule = TruthRule.parse({"linear": {"amount": 2, "country=de": 10}, "intercept": 1}, "test")
    columns = {"amount": np.array([1.0, None, 3.0], dtype=object), "country": np.array(["de", "fr", None], dtype=object)}
    assert rule.actual(columns, np.random.default_rng(0)) == [13.0, 1.0, 7.0]
    assert rule.features == {"amount", "country"}
    with pytest.raises(ScenarioError, match="categorical is"):
        Distribution.parse({"categorical": []}, "test")

"""The generated rules, checked by the real promtool: syntax, and behaviour on synthetic series."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.rules.alerts import alerts
from modelmon.rules.recording import recording_rules
from modelmon.rules.series import Names
from modelmon.settings import load_settings
from modelmon.targets.stack import render_stack

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make test installs it)")


def promtool(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


TEST_FILES = ("prometheus/tests/rules_test.yml", "prometheus/tests/changes_test.yml",
              "prometheus/tests/quality_test.yml")


def rule_tests(cwd) -> subprocess.CompletedProcess:
    """Every promtool case file, one promtool per file, two at a time (one core each)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda name: promtool("test", "rules", name, cwd=cwd), TEST_FILES))
    failed = [d for d in done if d.returncode != 0]
    return subprocess.CompletedProcess(done[0].args, failed[0].returncode if failed else 0,
                                       "".join(d.stdout for d in done), "".join(d.stderr for d in done))


# The demo settings differ in windows only; their promtool runs go with `make test-slow` (as the
# demo's rule mutants do), which keeps `make test` near its ten minutes.
_DEMO = pytest.mark.slow


@pytest.fixture(scope="module", params=[("stores", "production"), pytest.param(("stores", "demo"), marks=_DEMO),
                                        ("regressor", "production"), pytest.param(("regressor", "demo"), marks=_DEMO),
                                        ("categorical", "production"),
                                        pytest.param(("categorical", "demo"), marks=_DEMO)],
                ids="-".join)
def rendered(request, tmp_path_factory):
    """The rules and promtool cases of each kind of model: the stores classifier, a regressor,
    a classifier with a categorical and a sometimes-missing input."""
    which, settings = request.param
    profile = ReferenceProfile.load(profile_path(request.getfixturevalue(f"{which}_model").path))
    out = tmp_path_factory.mktemp(f"stack-{which}-{settings}")
    render_stack(profile, load_settings(settings), out, topology="native")
    return out


def test_rules_are_valid(rendered):
    result = promtool("check", "rules", *map(str, sorted((rendered / "prometheus" / "rules").glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(rendered):
    result = rule_tests(rendered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_exercised_by_the_unit_tests(rendered):
    files = [(rendered / name).read_text() for name in TEST_FILES]
    tests = "\n".join(files)
    rules = [r for f in (rendered / "prometheus" / "rules").glob("*.yml")
             for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]
    for rule in rules:
        name = rule.get("record") or rule["alert"]
        used_by_later_rule = any(name in other.get("expr", "") for other in rules if other is not rule)
        assert name in tests or used_by_later_rule, f"{name} is not checked by any promtool case"
    alert_tests = [t for f in files for group in yaml.safe_load(f)["tests"] for t in group["alert_rule_test"]]
    for rule in rules:
        if "alert" in rule:
            assert any(t["alertname"] == rule["alert"] and t["exp_alerts"] for t in alert_tests), \
                f"no case where {rule['alert']} fires"
            assert any(t["alertname"] == rule["alert"] and not t["exp_alerts"] for t in alert_tests), \
                f"no case where {rule['alert']} stays quiet"


@pytest.mark.slow  # one wrong rule by hand; tests/test_rule_mutants.py tries them all, also in `make test-slow`
def test_a_broken_drift_rule_is_caught(tmp_path, stores_profile):
    """A plain one-to-one `ignoring (le)` drops `le` and silently breaks PSI: promtool must fail."""
    render_stack(stores_profile, load_settings("demo"), tmp_path, topology="native")
    recording = tmp_path / "prometheus" / "rules" / "recording.yml"
    broken = recording.read_text().replace("ignoring (le) group_left model_feature_le", "ignoring (le) model_feature_le")
    assert broken != recording.read_text()
    recording.write_text(broken)
    result = rule_tests(tmp_path)
    assert result.returncode != 0
    assert "modelmon_feature_psi" in result.stdout + result.stderr


@pytest.mark.slow  # three classes: nine confusion cells of labels and nine expected, a minute of promtool
def test_multiclass_model_gets_rules_without_a_positive_class(tmp_path, iris_dir):
    profile = ReferenceProfile.load(profile_path(iris_dir / "model"))
    settings = load_settings("production")
    assert "ModelLowPositiveRate" not in {a.name for a in alerts(profile, settings)}
    assert Names.of(settings).positive_ratio not in {r["record"] for r in recording_rules(profile, settings)}
    render_stack(profile, settings, tmp_path, topology="native")
    result = rule_tests(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_carry_severity_summary_description_and_dashboard(stores_profile):
    url_rules = [a.rule("http://grafana/d/x") for a in alerts(stores_profile, load_settings("production"))]
    assert {r["alert"] for r in url_rules} == {
        "ModelLowPositiveRate", "ModelFeatureDrift", "ModelPredictionDrift", "ModelInvalidInputRate",
        "ModelServerErrors", "ModelHighLatency", "ModelServerDown", "ModelQualityDrop", "ModelEstimatedQualityDrop",
        "ModelConceptDrift"}
    for rule in url_rules:
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert "$value" in rule["annotations"]["description"] or rule["alert"] == "ModelServerDown"
        assert rule["annotations"]["dashboard"] == "http://grafana/d/x"
    low = next(r for r in url_rules if r["alert"] == "ModelLowPositiveRate")
    assert "upper_bound_rate5m < 0.2" in low["expr"] and "upper_bound_rate1m < 0.2" in low["expr"]
    assert low["for"] == "1m"
    quality = next(r for r in url_rules if r["alert"] == "ModelQualityDrop")
    assert "< 0.8" in quality["expr"] and ">= 100" in quality["expr"] and "ratio_rate1h" in quality["expr"]
    estimated = next(r for r in url_rules if r["alert"] == "ModelEstimatedQualityDrop")
    assert "model:modelmon_estimated_accuracy:upper_bound_rate1h < 0.8" in estimated["expr"]
    concept = next(r for r in url_rules if r["alert"] == "ModelConceptDrift")
    assert ("model:modelmon_accuracy:upper_bound_rate1h < model:modelmon_estimated_accuracy:ratio_rate1h - 0.1"
            in concept["expr"])


def test_quality_formulas_agree_with_scikit_learn():
    """The Python side of the promtool cases, checked against scikit-learn on the same labels."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    from modelmon.ruletests.inputs import confusion_quality

    confusion = {("normal", "normal"): 50, ("normal", "success"): 7, ("success", "normal"): 13,
                 ("success", "success"): 30}
    actual = [a for (a, _), k in confusion.items() for _ in range(k)]
    predicted = [p for (_, p), k in confusion.items() for _ in range(k)]
    got = confusion_quality(confusion, "success")
    assert got["accuracy"] == pytest.approx(accuracy_score(actual, predicted))
    assert got["precision"] == pytest.approx(precision_score(actual, predicted, pos_label="success"))
    assert got["recall"] == pytest.approx(recall_score(actual, predicted, pos_label="success"))
    assert got["f1"] == pytest.approx(f1_score(actual, predicted, pos_label="success"))


@pytest.mark.slow  # as above
def test_a_wrong_quality_rule_is_caught(tmp_path, stores_profile):
    """Precision divided by the actual positives (that is recall) must fail the promtool case."""
    settings = load_settings("demo")
    render_stack(stores_profile, settings, tmp_path, topology="native")
    recording = tmp_path / "prometheus" / "rules" / "recording.yml"
    rules = yaml.safe_load(recording.read_text())
    for rule in rules["groups"][0]["rules"]:
        if rule["record"] == Names.of(settings).precision:
            rule["expr"] = rule["expr"].replace('{predicted="success"}', '{actual="success"}')
    recording.write_text(yaml.safe_dump(rules))
    result = rule_tests(tmp_path)
    assert result.returncode != 0
    assert "modelmon_precision" in result.stdout + result.stderr


# Unusual but valid settings: the promtool data follows the thresholds and windows in force.
# Scraped and evaluated every 15 s (every minute for hour-long windows) to keep promtool quick.
FAST = {"scrape_interval": "15s", "evaluation_interval": "15s"}
GRID = [
    {"accuracy_floor": 0.6},  # was a traceback: the quality-drop data was fixed at 0.64 accuracy
    {"accuracy_floor": 0.05, "min_labels": 5},
    {"positive_rate_floor": 0.05},
    {"positive_rate_floor": 0.6},  # above training's 25 %: fires on normal traffic too, and the tests say so
    {"psi_threshold": 0.05, "ks_threshold": 0.05, "prediction_psi_threshold": 0.05},
    {"psi_threshold": 5.0, "ks_threshold": 0.9, "prediction_psi_threshold": 5.0},
    {"rate_window": "20s", "drift_window": "20s", "short_window": "10s", "quality_window": "10s", "alert_for": "10s",
     "min_samples": 20,
     "min_drift_samples": 20, "min_labels": 10, "scrape_interval": "5s", "evaluation_interval": "5s"},
    {"rate_window": "1h", "drift_window": "1h", "alert_for": "30m", "scrape_interval": "1m",
     "evaluation_interval": "1m"},
    {"invalid_ratio_threshold": 0.6, "error_ratio_threshold": 0.5, "latency_p99_seconds": 3.0},
    {"concept_drift_margin": 0.5, "confidence": 0.9},  # the labels' accuracy at 0 is the only gap past it
    {"concept_drift_margin": 0.01, "accuracy_floor": 0.95},
]


@pytest.mark.slow  # eleven stacks' promtool cases: minutes, so with the load tests in `make test-slow`
@pytest.mark.timeout(1200)
def test_rule_tests_follow_any_valid_settings(tmp_path, stores_profile):
    """Every stack of the grid renders and passes its promtool cases (two at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    def check(index_overrides: tuple[int, dict]) -> str | None:
        index, overrides = index_overrides
        out = tmp_path / str(index)
        render_stack(stores_profile, load_settings("production", env={}, flags={**FAST, **overrides}), out,
                     topology="native")
        result = rule_tests(out)
        return None if result.returncode == 0 else f"{overrides}:\n{result.stdout}{result.stderr}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(check, enumerate(GRID)) if f]
    assert not failures, "\n".join(failures)


def test_a_valid_accuracy_floor_renders_from_the_command_line(tmp_path):
    """`MODELMON_ACCURACY_FLOOR=0.6 modelmon stack render` ended in a traceback."""
    from .conftest import STORES_DIR

    done = subprocess.run([sys.executable, "-m", "modelmon", "stack", "render", "--model", str(STORES_DIR),
                           "--out", str(tmp_path)], env={**os.environ, "MODELMON_ACCURACY_FLOOR": "0.6"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "< 0.6" in (tmp_path / "prometheus" / "rules" / "alerts.yml").read_text()


def test_a_regressor_gets_error_rules_and_no_class_rules(regressor_model):
    profile = ReferenceProfile.load(profile_path(regressor_model.path))
    settings = load_settings("production")
    n = Names.of(settings)
    by_name = {a.name: a for a in alerts(profile, settings)}
    recorded = {r["record"] for r in recording_rules(profile, settings)}
    assert "ModelLowPositiveRate" not in by_name
    assert {n.mae, n.rmse, n.bias, n.prediction_ks, n.prediction_psi} <= recorded
    assert not {n.class_ratio, n.accuracy, n.confusion_rate} & recorded
    assert profile.errors is not None
    assert f"{n.mae} > {settings.mae_ratio * profile.errors.mae!r}" in by_name["ModelQualityDrop"].expr


def test_error_formulas_agree_with_numpy():
    """The Python reference of MAE, RMSE and bias (from per-replica sums) is the textbook one."""
    from modelmon.ruletests.inputs import Errors, errors_of

    rng = np.random.default_rng(1)
    parts = [rng.normal(3, 10, 40), rng.normal(-2, 5, 25)]

    def summed(e: np.ndarray) -> Errors:
        mae = float(np.abs(e).mean())
        return Errors(len(e), mae, float(np.sqrt((e**2).mean())), float(e.mean()))

    everything = np.concatenate(parts)
    got = errors_of([summed(part) for part in parts])
    assert got == pytest.approx({"mae": np.abs(everything).mean(), "rmse": np.sqrt((everything**2).mean()),
                                 "bias": everything.mean()})


@pytest.mark.parametrize("which", ["stores", "regressor"])
def test_the_windows_read_back_from_the_recorded_names(which, request):
    """`modelmon report` learns a stack's windows from its recorded series: for every kind."""
    profile = ReferenceProfile.load(profile_path(request.getfixturevalue(f"{which}_model").path))
    settings = load_settings("production", env={}, flags={"quality_window": "2h", "drift_window": "15m"})
    recorded = [r["record"] for r in recording_rules(profile, settings)]
    assert Names.windows_of(recorded) == {"rate_window": "5m", "drift_window": "15m", "quality_window": "2h",
                                          "short_window": "1m"}


def test_a_low_positive_rate_that_only_shows_summed_over_replicas_fires_once(tmp_path, stores_profile):
    """Two replicas each see 10 % successful stores, each on too few rows for the Wilson bound
    to be evidence under the 20 % floor; summed (as the rules do, by model) the rows suffice:
    ModelLowPositiveRate fires, once, for the model. Either replica alone: it does not."""
    from modelmon.ruletests.oracle import positive_needed
    from modelmon.settings import seconds

    settings = load_settings("production")
    layout = render_stack(stores_profile, settings, tmp_path, topology="native").layout
    window, interval = seconds(settings.rate_window), 15.0
    needed = positive_needed(0.1, settings)
    assert needed is not None
    per_replica = 0.6 * needed  # rows per replica over the rate window: alone short, together enough
    per_step = per_replica / (window / interval)
    steps = int(2 * window / interval)
    positive = stores_profile.positive
    assert positive is not None
    negative = next(c.label for c in stores_profile.classes if c.label != positive.label)

    def series(instances: list[str]) -> list[dict[str, str]]:
        return [{"series": f'modelmon_predictions_total{{job="modelmon", instance="{i}", model="stores", '
                           f'class="{label}"}}',
                 "values": f"0+{share * per_step!r}x{steps}"}
                for i in instances for label, share in ((positive.label, 0.1), (negative, 0.9))]

    firing = 'ALERTS{alertname="ModelLowPositiveRate", alertstate="firing"}'
    at = f"{int(window + 120)}s"  # the window full, and past the alert's `for`
    cases = {"tests": [
        {"name": "summed over two replicas", "interval": "15s", "input_series": series(["a:8000", "b:8000"]),
         "promql_expr_test": [{"expr": firing, "eval_time": at, "exp_samples": [{
             "labels": 'ALERTS{alertname="ModelLowPositiveRate", alertstate="firing", model="stores", '
                       'severity="critical"}', "value": 1}]}]},
        {"name": "one replica alone", "interval": "15s", "input_series": series(["a:8000"]),
         "promql_expr_test": [{"expr": f"absent({firing})", "eval_time": at,
                               "exp_samples": [{"labels": "{alertname=\"ModelLowPositiveRate\", "
                                                          "alertstate=\"firing\"}", "value": 1}]}]},
    ]}
    test_file = layout.rule_tests / "replicas_test.yml"
    cases["rule_files"] = [f"../rules/{p.name}" for p in sorted(layout.rules.glob("*.yml"))]
    cases["evaluation_interval"] = "15s"
    test_file.write_text(yaml.safe_dump(cases))
    result = promtool("test", "rules", test_file.name, cwd=layout.rule_tests)
    assert result.returncode == 0, result.stdout + result.stderr

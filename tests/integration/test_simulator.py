"""The simulator against a real `modelmon serve` process."""

from __future__ import annotations

from collections import Counter

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats

from modelmon.simulate.scenarios import ScenarioError, load_scenario, parse_scenario
from modelmon.simulate.simulator import Simulator

from .conftest import REPO, concept_drift, free_port, running


@pytest.fixture(scope="module")
def server():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(["serve", "--port", str(port)], ready_url=f"{url}/ready"):
        yield url


def test_rate_is_held_and_values_follow_the_scenario(server):
    scenario = parse_scenario({"name": "ten-seconds", "rate": 50, "phases": [{
        "name": "normal", "duration": "10s",
        "features": {"items_count": {"normal": {"mean": 1782, "sd": 300}},
                     "customers_count": {"uniform": {"low": 100, "high": 1500}}},
    }]}, "test")
    result = Simulator(server, scenario, seed=3, show_progress=False).run()
    [phase] = result.phases
    assert phase.errors == 0 and phase.dropped == 0 and phase.ok == phase.sent == 500
    assert abs(phase.achieved_rate - 50) / 50 < 0.05, phase.achieved_rate
    items = phase.values["items_count"]
    assert stats.kstest(items, "norm", args=(1782, 300)).pvalue > 0.01
    assert stats.kstest(phase.values["customers_count"], "uniform", args=(100, 1400)).pvalue > 0.01
    assert np.all(items == np.rint(items))  # integers, as the signature says


def test_invalid_share_is_sent_rejected_and_counted(server):
    before = invalid_total(server)
    scenario = load_scenario("bad-inputs").lasting(6)
    result = Simulator(server, scenario, seed=4, show_progress=False).run()
    malformed = result.phases[1]
    assert malformed.errors == 0
    assert 0.1 < malformed.rejected / malformed.sent < 0.4
    assert invalid_total(server) - before == sum(p.rejected for p in result.phases)


def invalid_total(server: str) -> float:
    text = httpx.get(f"{server}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "modelmon_invalid_requests_total")


def confusion(server: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{server}/metrics").text
    return {(s.labels["actual"], s.labels["predicted"]): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "modelmon_feedback_total"}


def test_delayed_labels_make_the_exact_confusion_matrix(server):
    before = confusion(server)
    scenario = concept_drift("labels", rate=60, share=0.6, delay=(0.2, 1.5), durations=("4s", "4s"))
    result = Simulator(server, scenario, seed=8, show_progress=False).run()
    for phase in result.phases:
        assert phase.labels_sent == phase.labels_accepted > 0.45 * phase.ok, phase
    after = confusion(server)
    sent = sum((p.confusion for p in result.phases), Counter())
    assert {cell: after[cell] - before.get(cell, 0) for cell in after if after[cell] - before.get(cell, 0)} == dict(sent)

    def accuracy(phase):
        return sum(v for (a, p), v in phase.confusion.items() if a == p) / phase.labels_accepted

    assert accuracy(result.phases[0]) > 0.85 and accuracy(result.phases[1]) < 0.75


def test_scenario_for_another_model_is_refused(server, tmp_path):
    scenario = parse_scenario({"phases": [{"duration": "1s", "features": {
        "sepal_length_cm": {"constant": 5}, "sepal_width_cm": {"constant": 3}}}]}, "iris.yaml")
    with pytest.raises(ScenarioError, match="does not fit the served model"):
        Simulator(server, scenario, show_progress=False).run()


def test_cli_refuses_with_one_sentence(server, tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "iris-scenario.yaml"
    bad.write_text("phases:\n  - duration: 1s\n    features:\n      petal_width_cm: {constant: 1}\n")
    result = subprocess.run([sys.executable, "-m", "modelmon", "simulate", str(bad), "--url", server],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "does not fit the served model" in result.stderr
    assert result.stderr.strip().count("\n") == 0

"""/metrics passes Prometheus' own linter, and speaks OpenMetrics to a scraper that asks."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from .conftest import make_client

# What Prometheus 2.x sends when it scrapes (its default scrape protocols).
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def assert_exposition_is_clean(get) -> None:
    """`get(headers)` answers a scrape of /metrics: as text, promtool's linter finds nothing;
    asked as Prometheus asks, the answer is OpenMetrics, parses strictly and ends with # EOF."""
    text = get({}).text
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr
    answer = get({"Accept": PROMETHEUS_ACCEPT})
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")
    families = list(parse_openmetrics(answer.text))
    assert any(f.name == "modelmon_predictions" for f in families)
    for family in families:
        if family.type != "histogram":
            assert not any("le" in s.labels for s in family.samples), family.name


def _traffic(client, model) -> None:
    client.post("/predict", json={"instances": [{f.name: i + 1 for f in model.features} for i in range(5)]})
    client.post("/predict", json={"nonsense": 1})


@pytest.mark.parametrize("which", ["stores", "iris"])
def test_exposition_is_clean_in_both_formats(which, stores_model, iris_model):
    """promtool's linter reads the text format (given OpenMetrics, it takes a counter's family
    name for a missing HELP), so the OpenMetrics answer is checked by its strict parser."""
    model = stores_model if which == "stores" else iris_model
    client = make_client(model)
    _traffic(client, model)
    assert_exposition_is_clean(lambda headers: client.get("/metrics", headers=headers))


def test_openmetrics_when_asked_for(stores_model):
    client = make_client(stores_model)
    _traffic(client, stores_model)
    answer = client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(answer.text)}
    predictions = families["modelmon_predictions"]
    assert predictions.type == "counter"
    assert sum(s.value for s in predictions.samples if s.name == "modelmon_predictions_total") == 5
    assert not any(s.name.endswith("_created") for f in families.values() for s in f.samples)


def test_text_format_by_default(stores_model):
    answer = make_client(stores_model).get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    assert "# EOF" not in answer.text and "_created" not in answer.text

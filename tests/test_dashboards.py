import json

from modelmon.rules.series import Names
from modelmon.settings import load_settings
from modelmon.targets.dashboards import build_dashboard, panel_queries
from modelmon.targets.panels import panel_specs

from .conftest import REPO


def test_dashboard_has_the_rows_variables_and_schema(stores_profile):
    board = build_dashboard(stores_profile, load_settings("production"))
    assert board["uid"] == "modelmon-stores"
    assert board["schemaVersion"] == 41
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Data", "Predictions", "Quality", "Versions", "Service", "Alerts"]
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "model", "instance"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_success_rate_panel_draws_the_20_percent_line(stores_profile):
    board = build_dashboard(stores_profile, load_settings("production"))
    panel = next(p for p in board["panels"] if p["title"] == "'success' rate")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == 0.2
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    assert Names.of(load_settings("production")).positive_ratio in panel["targets"][0]["expr"]


def test_quality_panel_reads_the_alerted_accuracy_and_draws_its_floor(stores_profile):
    settings = load_settings("production")
    board = build_dashboard(stores_profile, settings)
    panel = next(p for p in board["panels"] if p["title"].startswith("Model quality over 1h"))
    exprs = [t["expr"] for t in panel["targets"]]
    n = Names.of(settings)
    assert exprs[0].startswith(n.accuracy) and [n.precision in e for e in exprs] == [False, True, False, False]
    assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == settings.accuracy_floor


def test_every_feature_has_value_and_distribution_panels(iris_model):
    from modelmon.model.reference import ReferenceProfile, profile_path

    profile = ReferenceProfile.load(profile_path(iris_model.path))
    titles = [s.title for s in panel_specs(profile, load_settings("demo"))]
    for f in profile.features:
        assert f"{f.name}: last value" in titles
        assert any(t.startswith(f"{f.name}: distribution") for t in titles)
    assert not any("rate" in t and "'" in t for t in titles)  # no positive class for iris


def test_panel_queries_fill_in_the_variables():
    board = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "modelmon-stores.json").read_text())
    queries = list(panel_queries(board, "stores"))
    assert len(queries) >= 12
    assert all("$" not in expr for _, expr in queries)

"""Every series a rule, a promtool case or a dashboard panel reads is one the server exports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from modelmon.contract import names as N
from modelmon.contract.names import FAMILIES, metrics_reference
from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.rules.files import rule_files
from modelmon.ruletests.suite import rule_tests
from modelmon.settings import Settings, load_settings
from modelmon.targets.dashboards import build_dashboard, panel_queries

from .conftest import make_client

# An exported name: `modelmon_...` not part of a recorded `level:metric:operation` name.
_EXPORTED = re.compile(r"(?<![\w:])(modelmon_\w+)(?![\w:])(\{[^}]*\})?")
_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")


def _scrape(client, model) -> dict[str, set[str]]:
    """Sample name -> label names, after a prediction, a bad request and a label."""
    row = {f.name: {"string": "x", "boolean": True}.get(f.kind, 1) for f in model.features}
    client.post("/predict", json=row)
    client.post("/predict", json={"nonsense": 1})
    families = text_string_to_metric_families(client.get("/metrics").text)
    out: dict[str, set[str]] = {}
    for family in families:
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def _readers(profile: ReferenceProfile, settings: Settings) -> list[tuple[str, str]]:
    """(where, expression) for every rule, promtool input series and dashboard query."""
    out = []
    for text in rule_files(profile, settings).values():
        for group in yaml.safe_load(text)["groups"]:
            out += [(f"rule {r.get('record') or r['alert']}", r["expr"]) for r in group["rules"]]
    for name, text in rule_tests(profile, settings, ["r.yml"]).items():
        for case in yaml.safe_load(text)["tests"]:
            out += [(f"{name}: {case['name']}", s["series"]) for s in case["input_series"]]
    board = build_dashboard(profile, settings)
    out += [(f"panel {title}", expr) for title, expr in panel_queries(board, profile.model)]
    return out


@pytest.mark.parametrize("which", ["stores", "iris", "regressor", "categorical"])
@pytest.mark.parametrize("profile_name", ["production", "demo"])
def test_every_series_read_is_exported(which, profile_name, request):
    model = request.getfixturevalue(f"{which}_model")
    profile = ReferenceProfile.load(profile_path(model.path))
    exported = _scrape(make_client(model), model)
    missing = []
    # prometheus_client exports no `_sum` for a histogram whose first bucket bound is negative (a
    # regressor's inputs or predictions can be): nothing may read it, whatever this model exports.
    unreliable = {N.FEATURE_VALUE.name + "_sum", N.PREDICTION_VALUE.name + "_sum"}
    for where, expr in _readers(profile, load_settings(profile_name, env={})):
        for name, selector in _EXPORTED.findall(expr):
            if name in unreliable:
                missing.append(f"{where}: reads {name}, absent where a bucket bound is negative")
            elif name not in exported:
                missing.append(f"{where}: {name} is not exported")
                continue
            unknown = {label for label in _LABEL.findall(selector or "")} - exported[name] - {"job", "instance"}
            if unknown:
                missing.append(f"{where}: {name} has no label {sorted(unknown)}")
    assert not missing, "\n".join(missing)


def test_the_exported_families_are_the_named_ones(stores_model, regressor_model, categorical_model):
    """Each kind of model exports only named families (served, or collected by `modelmon
    collect`); between them, every named one."""
    from fastapi.testclient import TestClient

    from modelmon.monitoring.monitor import Monitor
    from modelmon.serving.collector import create_collector

    exported: dict[str, set[str]] = {}
    collector = TestClient(create_collector(
        Monitor.for_model(stores_model, ReferenceProfile.load(profile_path(stores_model.path))),
        Settings(prediction_log="off")))
    clients = [(make_client(model), model) for model in (stores_model, regressor_model, categorical_model)]
    for client, model in [*clients, (collector, stores_model)]:
        for sample, labels in _scrape(client, model).items():
            exported.setdefault(sample, set()).update(labels)
    named = {sample for f in FAMILIES for sample in f.exported}
    assert set(exported) == named
    for family in FAMILIES:
        for sample in family.exported:
            assert set(family.labels) <= exported[sample] | {"le"}, family.name


def test_readme_metrics_table_is_generated():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert metrics_reference() in readme, "README's metrics table is stale: run `make readme`"

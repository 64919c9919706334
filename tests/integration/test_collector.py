"""The collector on the real native stack: KServe's logged events replayed into
`modelmon up --collect`, scraped by a real Prometheus, fire ModelFeatureDrift."""

from __future__ import annotations

import importlib
import sys

import pytest

from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.settings import load_settings
from modelmon.targets.host import free_port
from modelmon.targets.layout import APP, PROMETHEUS
from modelmon.targets.native import NativeStack

from .conftest import REPO, prom_query, wait_until

pytestmark = pytest.mark.slow


def test_a_drifted_kserve_replay_fires_feature_drift(tmp_path):
    sys.path.insert(0, str(REPO))
    replay = importlib.import_module("examples.kserve_replay")
    model = REPO / "models" / "stores"
    ports = {f"{name}_port": free_port() for name in ("app", "prometheus", "alertmanager", "receiver")}
    settings = load_settings("demo").replace(**ports)
    profile = ReferenceProfile.load(profile_path(model))
    with NativeStack(model.resolve(), profile, settings, tmp_path / "run", collect=True) as stack:
        wait_until(lambda: prom_query(stack.url(PROMETHEUS), 'up{job="modelmon"} == 1'), timeout=30,
                   what="Prometheus scraping the collector")
        sent = replay.replay(REPO / "examples" / "kserve-events.jsonl", stack.url(APP) + "/", rate=40)
        assert sent == 1200
        def total(expr: str) -> float:
            result = prom_query(stack.url(PROMETHEUS), expr)
            return float(result[0]["value"][1]) if result else 0.0

        # Every inference joined and counted once; nothing waiting, late or unreadable.
        wait_until(lambda: total("sum(modelmon_predictions_total)") == 600, timeout=20,
                   what="every joined inference counted")
        assert total('sum(modelmon_collector_events_total{outcome="joined"})') == 1200
        assert total('sum(modelmon_collector_events_total{outcome!="joined"})') == 0
        wait_until(lambda: prom_query(stack.url(PROMETHEUS),
                                      'ALERTS{alertname="ModelFeatureDrift", feature="items_count", '
                                      'alertstate="firing"}'), timeout=60, what="ModelFeatureDrift(items_count)")
        assert not prom_query(stack.url(PROMETHEUS), 'ALERTS{alertname="ModelFeatureDrift", '
                                                     'feature="customers_count", alertstate="firing"}')

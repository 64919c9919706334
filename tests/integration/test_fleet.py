"""A fleet on this machine: 4 app replicas, 2 Prometheus shards with their own `cluster`
label remote-writing into VictoriaMetrics, vmalert evaluating the generated rules over the
global store. One scenario is played through it while a shard and then the store are away
for 60 s each; the tests below read what it left behind.
"""

from __future__ import annotations

import math
import signal
import subprocess
import threading
import time
from collections import defaultdict

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from modelmon.contract import names as N
from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.settings import load_settings
from modelmon.simulate.scenarios import parse_scenario
from modelmon.simulate.simulator import Simulator
from modelmon.stats.drift import bin_shares, ks_distance, psi
from modelmon.targets.dashboards import panel_queries
from modelmon.targets.host import find_binary, free_port
from modelmon.targets.layout import APP, PROMETHEUS, VICTORIA_METRICS, Instance
from modelmon.targets.native import NativeStack
from modelmon.targets.prometheus import prometheus_config

from .conftest import REPO, TRAINING_INPUTS, TRAINING_TRUTH, prom_query, wait_until

pytestmark = pytest.mark.slow

DEFAULT_MODEL = REPO / "models" / "stores"

REPLICAS, SHARDS = 4, 2
OUTAGE = 60.0
# Where the rules run, recorded series from vmalert (MetricsQL) and from a Prometheus that
# scrapes every replica itself differ only by how each engine takes a counter's increase over
# a window (Prometheus extrapolates to the window's edges, MetricsQL does not): ratios of two
# increases of the same targets then agree closely, increases and rates less so.
RATIO_TOLERANCE = 0.02
RATE_TOLERANCE = 0.05
RATE_FLOOR = 0.01  # per second: below this a rate is a handful of rows in the window


SCENARIO = parse_scenario({
    "name": "fleet",
    "rate": 10,
    "feedback": {"share": 0.3, "delay": {"uniform": {"low": 1, "high": 5}}, "truth": TRAINING_TRUTH},
    "phases": [
        {"name": "normal", "duration": "130s", "healthy": True, "features": TRAINING_INPUTS},
        # The workshop's faulty items: far from training, on every replica at once.
        {"name": "items drift", "duration": "40s",
         "features": {**TRAINING_INPUTS, "items_count": {"normal": {"mean": 300, "sd": 100}}}},
    ],
}, "test")


def _query(url: str, expr: str, at: float | None = None) -> list[dict]:
    params: dict[str, str | float] = {"query": expr}
    if at is not None:
        params["time"] = at
    response = httpx.get(f"{url}/api/v1/query", params=params, timeout=10)
    response.raise_for_status()  # not ready yet: an HTTPError, which wait_until waits out
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def _total(url: str, expr: str) -> float:
    result = _query(url, expr)
    return float(result[0]["value"][1]) if result else 0.0


def _scraped(urls: list[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the replicas' own /metrics, summed over the replicas."""
    summed: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
    for url in urls:
        for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
            for sample in family.samples:
                summed[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    return summed


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    find_binary("victoria-metrics")
    app, prom = free_port(count=REPLICAS), free_port(count=SHARDS)
    single = {part: free_port() for part in ("alertmanager", "receiver", "victoria_metrics", "vmalert")}
    settings = load_settings("demo").replace(
        replicas=REPLICAS, shards=SHARDS, app_port=app, prometheus_port=prom,
        alertmanager_port=single["alertmanager"], receiver_port=single["receiver"],
        victoria_metrics_port=single["victoria_metrics"], vmalert_port=single["vmalert"],
        # The drift window is longer than the whole run, so KS and PSI cover all of it; the rate
        # and quality windows are shorter, so their rates are read from series older than the
        # window, as in production (for a younger series MetricsQL divides the increase by the
        # series' age, PromQL by the window: docs/SCALING.md).
        rate_window="1m", drift_window="10m", quality_window="1m")
    run_dir = tmp_path_factory.mktemp("fleet")
    profile = ReferenceProfile.load(profile_path(DEFAULT_MODEL))
    stack = NativeStack(DEFAULT_MODEL.resolve(), profile, settings, run_dir).start(timeout=180)
    reference = None
    try:
        # The same rules in a Prometheus of its own scraping every replica: the engine
        # vmalert's recorded series are compared with. It notifies no one.
        config = yaml.safe_load(prometheus_config(settings.replace(shards=1), "native"))
        del config["alerting"]
        config["scrape_configs"] = config["scrape_configs"][:1]
        config_file = stack.layout.prometheus_config.parent / "reference.yml"
        config_file.write_text(yaml.safe_dump(config))
        reference_url = f"http://127.0.0.1:{free_port()}"
        reference = subprocess.Popen(
            [find_binary("prometheus"), f"--config.file={config_file}", f"--storage.tsdb.path={run_dir / 'reference'}",
             f"--web.listen-address={reference_url.removeprefix('http://')}"],
            stdout=(run_dir / "reference.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: len(_query(reference_url, 'up{job="modelmon"} == 1')) == REPLICAS, timeout=60,
                   what="the reference Prometheus scraping every replica")
        store = VICTORIA_METRICS.url(settings)
        wait_until(lambda: len(_query(store, 'up{job="modelmon"} == 1')) == REPLICAS, timeout=60,
                   what="every replica's `up` in the global store")
        replica_urls = [i.url(settings) for i in stack.instances(APP)]

        outcome: dict[str, object] = {}
        player = threading.Thread(target=lambda: outcome.update(
            result=Simulator(replica_urls, SCENARIO, seed=11, show_progress=False).run()))
        started = time.time()
        player.start()

        def at(offset: float) -> None:
            time.sleep(max(0.0, started + offset - time.time()))

        at(10)
        stack.kill("prometheus-2", signal.SIGTERM)
        shard_away = (time.time(), 0.0)
        at(10 + OUTAGE)
        stack.start_again("prometheus-2")
        shard_away = (shard_away[0], time.time())
        at(5 + OUTAGE + 10)
        stack.kill("victoria-metrics", signal.SIGTERM)
        store_away = (time.time(), 0.0)
        at(5 + 2 * OUTAGE + 10)
        stack.start_again("victoria-metrics")
        store_away = (store_away[0], time.time())
        player.join()
        result = outcome["result"]
        sent = sum(p.ok for p in result.phases)
        assert sent == sum(p.sent for p in result.phases) > 1500
        counted = N.PREDICTIONS.total
        wait_until(lambda: _total(store, f'sum({counted}{{job="modelmon"}})') == sent, timeout=90,
                   what="the global store to hold every prediction")
        wait_until(lambda: any(n.get("alertname") == "ModelFeatureDrift" for n in _notifications(stack)),
                   timeout=90, what="the global drift alert's notification")
        time.sleep(15)  # every short window past the traffic
        yield {"stack": stack, "settings": settings, "store": store, "reference": reference_url,
               "replicas": replica_urls, "result": result, "sent": sent, "profile": profile,
               "shard_away": shard_away, "store_away": store_away}
    finally:
        if reference is not None:
            reference.terminate()
            reference.wait(30)
        stack.stop()


def _notifications(stack: NativeStack) -> list[dict]:
    import json

    path = stack.notifications_file
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_global_counts_equal_what_every_replica_was_sent(fleet):
    """Class counts and per-feature counts summed over both clusters in VictoriaMetrics equal
    the replicas' own counters, and their total equals what the simulator sent, although a
    shard and the store were each away for a minute."""
    store, scraped = fleet["store"], _scraped(fleet["replicas"])
    by_class = {r["metric"]["class"]: float(r["value"][1])
                for r in _query(store, f'sum by (class) ({N.PREDICTIONS.total}{{job="modelmon"}})')}
    own = defaultdict(float)
    for (name, labels), value in scraped.items():
        if name == N.PREDICTIONS.total:
            own[dict(labels)["class"]] += value
    assert by_class == dict(own)
    assert sum(by_class.values()) == fleet["sent"]
    features = {r["metric"]["feature"]: float(r["value"][1])
                for r in _query(store, f'sum by (feature) ({N.FEATURE_QUANTILE.count}{{job="modelmon"}})')}
    assert features == {"items_count": fleet["sent"], "customers_count": fleet["sent"]}
    clusters = {r["metric"]["cluster"] for r in _query(store, f'{N.PREDICTIONS.total}{{job="modelmon"}}')}
    assert clusters == {"cluster-1", "cluster-2"}


def test_global_ks_and_psi_equal_python_over_all_rows(fleet):
    """vmalert's KS and PSI per input, over every replica, equal `modelmon.stats.drift` computed
    from the same summed counts (the windows cover the whole run)."""
    store, window = fleet["store"], fleet["settings"].drift_window
    now = time.time()
    buckets = defaultdict(dict)
    for r in _query(store, f'sum by (feature, le) ({N.FEATURE_QUANTILE.bucket}{{job="modelmon", le!="+Inf"}})', now):
        buckets[r["metric"]["feature"]][float(r["metric"]["le"])] = float(r["value"][1])
    reference = defaultdict(dict)
    for r in _query(store, f"max by (feature, {N.BOUND}) ({N.FEATURE_QUANTILE_REFERENCE.name})", now):
        reference[r["metric"]["feature"]][float(r["metric"][N.BOUND])] = float(r["value"][1])
    recorded = {
        statistic: {r["metric"]["feature"]: float(r["value"][1])
                    for r in _query(store, f"model_feature:modelmon_feature_{statistic}:{window}", now)}
        for statistic in ("ks", "psi")}
    assert set(buckets) == {"items_count", "customers_count"}
    for feature, counts in buckets.items():
        bounds = sorted(counts)
        live_cdf = np.array([counts[b] for b in bounds]) / fleet["sent"]
        reference_cdf = np.array([reference[feature][b] for b in bounds])
        assert recorded["ks"][feature] == pytest.approx(ks_distance(live_cdf, reference_cdf), abs=1e-6)
        assert recorded["psi"][feature] == pytest.approx(
            psi(bin_shares(live_cdf), bin_shares(reference_cdf)), abs=1e-6)
    assert recorded["ks"]["items_count"] > 0.1 > recorded["ks"]["customers_count"]


def test_a_drift_across_the_fleet_fires_once_globally(fleet):
    """The items drift reached every replica: one ModelFeatureDrift(items_count), evaluated by
    vmalert over both clusters (cluster="global"), notified once; none per cluster or replica."""
    alerts = httpx.get(f"{fleet['stack'].url('alertmanager')}/api/v2/alerts", timeout=10).json()
    drift = [a["labels"] for a in alerts if a["labels"]["alertname"] == "ModelFeatureDrift"]
    assert drift == [{"alertname": "ModelFeatureDrift", "cluster": "global", "feature": "items_count",
                      "model": "stores", "severity": "warning"}]
    assert any(n.get("alertname") == "ModelFeatureDrift" and n.get("status") == "firing"
               for n in _notifications(fleet["stack"]))
    # The shards evaluate nothing themselves.
    for shard in fleet["stack"].instances(PROMETHEUS):
        assert httpx.get(f"{shard.url(fleet['settings'])}/api/v1/rules", timeout=10).json()["data"]["groups"] == []


def test_nothing_is_lost_while_the_store_is_away(fleet):
    """While VictoriaMetrics was down, both shards kept scraping into their WAL; once it was
    back they sent it all: cluster-1's replicas have a sample for every scrape of the outage."""
    store, (start, end) = fleet["store"], fleet["store_away"]
    interval = fleet["settings"].scrape_interval
    span = math.floor(end - start)
    for r in _query(store, f'count_over_time({N.PREDICTIONS.total}{{cluster="cluster-1", class="normal"}}[{span}s])',
                    end):
        assert float(r["value"][1]) >= span / float(interval.removesuffix("s")) - 2, r


def test_a_shard_that_was_away_catches_up(fleet):
    """cluster-2 was stopped for a minute: its replicas' counters were scraped again after the
    restart and their totals in the store equal their own counters (checked in the counts
    test); here, the gap is where the shard was away, and only there."""
    store, (start, end) = fleet["store"], fleet["shard_away"]
    stack, settings = fleet["stack"], fleet["settings"]
    shard_2 = Instance(PROMETHEUS, 1, SHARDS)
    for replica in stack.instances(APP):
        cluster = "cluster-2" if replica.index % SHARDS == shard_2.index else "cluster-1"
        expr = f'count_over_time({N.PREDICTIONS.total}{{instance="{replica.address(settings)}", class="normal"}}[50s])'
        inside = _query(store, expr, start + 55)
        if cluster == "cluster-2":
            assert inside == [], "samples where the shard was away"
        else:
            assert float(inside[0]["value"][1]) >= 45
        assert _query(store, expr, end + 55), f"{replica.name} not scraped after the restart"


def test_vmalert_and_prometheus_record_the_same_series(fleet):
    """Every recorded series of the generated rules over the long windows, from vmalert over
    the global store and from a Prometheus scraping every replica: the same label sets, ratios
    within RATIO_TOLERANCE, rates and increases within RATE_TOLERANCE (relative). The short
    window's series are left out: with a window that short, one scrape's phase moves them.
    The drift window's are read after the traffic (it holds all of it, so they stand still);
    the others as they were a few seconds before the traffic stopped, where their windows held
    steady traffic (a window that holds the end of the traffic, or a drift as it sets in, is
    read by each engine at its own instant, and the store answers with its latency offset)."""
    rules_dir = fleet["stack"].layout.rules
    short = fleet["settings"].short_window
    records = sorted({rule["record"] for path in rules_dir.glob("*.yml")
                      for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
                      if "record" in rule and not rule["record"].endswith(short)})
    steady, after = fleet["result"].phases[-1].ended_at - 3, time.time()
    drift_window = fleet["settings"].drift_window
    compared = 0
    mismatched = []
    def values(url: str, record: str, drop: tuple[str, ...]) -> dict[tuple, float]:
        at = after if record.endswith(drift_window) else steady
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k not in drop)): float(r["value"][1])
                for r in _query(url, record, at)}

    for record in records:
        theirs = values(fleet["store"], record, ("__name__", "cluster"))
        # 0/0 (a window without traffic): Prometheus records NaN, MetricsQL drops the sample.
        ours = {k: v for k, v in values(fleet["reference"], record, ("__name__",)).items() if not math.isnan(v)}
        assert theirs.keys() == ours.keys(), record
        counting = "increase" in record or ":rate" in record or record.endswith("_rate")
        for key, value in ours.items():
            compared += 1
            tolerance = max(RATE_TOLERANCE * abs(value), RATE_FLOOR) if counting else RATIO_TOLERANCE
            if abs(theirs[key] - value) > max(tolerance, 1e-9):
                mismatched.append((record, key, value, theirs[key]))
    assert compared > 100
    assert not mismatched, mismatched


def test_the_dashboard_can_read_the_global_store(fleet):
    """Every panel of the generated dashboard has data when its data source is VictoriaMetrics."""
    board = fleet["stack"].layout.dashboard
    import json

    empty = [title for title, expr in panel_queries(json.loads(board.read_text()), "stores")
             if not prom_query(fleet["store"], expr)]
    assert not empty, f"panels without data in the global store: {empty}"


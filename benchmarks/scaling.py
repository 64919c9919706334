"""Series and remote-write figures for docs/SCALING.md, measured on a real fleet.

    .venv/bin/python benchmarks/scaling.py --seconds 120

Starts `modelmon up` with 2 replicas and 2 shards (production settings: scrape every 5 s) on
free ports, sends steady normal traffic with labels, then reads:
- the series one replica exports, per metric family, and how they grow: per input, per class,
  per histogram bucket (from a real scrape of /metrics);
- the series the rules record per model in the global store;
- what the shards remote-write: samples/s and bytes/s (Prometheus' own counters);
and projects them for 100 models x 20 replicas x 3 clusters.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.settings import load_settings, seconds
from modelmon.simulate.scenarios import parse_scenario
from modelmon.simulate.simulator import Simulator
from modelmon.targets.host import free_port
from modelmon.targets.layout import APP, PROMETHEUS, VICTORIA_METRICS
from modelmon.targets.native import NativeStack

MODELS, REPLICAS, CLUSTERS = 100, 20, 3


def _query(url: str, expr: str) -> float:
    result = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _grouping(labels: dict[str, str]) -> str:
    if "le" in labels:
        return "per bucket"
    for key, what in (("feature", "per input"), ("class", "per class"), ("actual", "per class pair")):
        if key in labels:
            return what
    return "per model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/stores"))
    parser.add_argument("--seconds", type=float, default=120.0, help="steady traffic to measure over")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s over the fleet")
    args = parser.parse_args()

    settings = load_settings("production").replace(
        replicas=2, shards=2, app_port=free_port(count=2), prometheus_port=free_port(count=2),
        alertmanager_port=free_port(), receiver_port=free_port(), victoria_metrics_port=free_port(),
        vmalert_port=free_port())
    profile = ReferenceProfile.load(profile_path(args.model))
    scenario = parse_scenario({"name": "steady", "rate": args.rate, "feedback": {
        "share": 0.5, "delay": {"uniform": {"low": 1, "high": 10}},
        "truth": {"linear": {"customers_count": 1}, "threshold": 965, "noise": 35}},
        "phases": [{"name": "normal", "duration": f"{int(args.seconds) + 30}s", "features": {
            "items_count": {"normal": {"mean": 1782, "sd": 300}},
            "customers_count": {"normal": {"mean": 786, "sd": 265}}}}]}, "scaling")
    with tempfile.TemporaryDirectory(prefix="modelmon-scaling-") as tmp, \
            NativeStack(args.model.resolve(), profile, settings, Path(tmp)) as stack:
        replicas = [i.url(settings) for i in stack.instances(APP)]
        shards = [i.url(settings) for i in stack.instances(PROMETHEUS)]
        store = VICTORIA_METRICS.url(settings)
        player = threading.Thread(target=Simulator(replicas, scenario, seed=1, show_progress=False).run)
        player.start()
        time.sleep(30)  # every series exists and remote write runs steadily
        sent = "prometheus_remote_storage_samples_total", "prometheus_remote_storage_bytes_total"
        before = [sum(_query(s, f"sum({name})") for s in shards) for name in sent]
        started = time.monotonic()
        time.sleep(args.seconds)
        after = [sum(_query(s, f"sum({name})") for s in shards) for name in sent]
        elapsed = time.monotonic() - started
        families: Counter[str] = Counter()
        grouping: Counter[str] = Counter()
        for family in text_string_to_metric_families(httpx.get(f"{replicas[0]}/metrics", timeout=10).text):
            for sample in family.samples:
                families[family.name] += 1
                grouping[_grouping(sample.labels) if family.name.startswith("modelmon_") else "other"] += 1
        recorded = _query(store, 'count({__name__=~".+:.+", cluster="global"})')
        scraped_up = _query(store, 'count(up{job="modelmon"})')
        player.join()

    per_replica = sum(families.values())
    modelmon = sum(n for name, n in families.items() if name.startswith("modelmon_"))
    samples_per_s, bytes_per_s = ((b - a) / elapsed for a, b in zip(before, after))
    interval = seconds(settings.scrape_interval)
    print(f"model {profile.model!r}: {len(profile.features)} numeric inputs, "
          f"{len(profile.classes or ())} classes; scrape every {settings.scrape_interval}\n")
    print("series one replica exports (a real scrape of /metrics)")
    for name, n in sorted(families.items(), key=lambda kv: -kv[1]):
        if name.startswith("modelmon_"):
            print(f"  {name:<48}{n:>6}")
    print(f"  {'modelmon_* total':<48}{modelmon:>6}")
    print(f"  {'process/python (prometheus_client defaults)':<48}{per_replica - modelmon:>6}")
    print("  by what they grow with: " + ", ".join(f"{k} {v}" for k, v in grouping.most_common()))
    print(f"\nrecorded by the rules per model (global store): {recorded:.0f}")
    print(f"replicas in the global store: {scraped_up:.0f}")
    print(f"\nremote write, both shards together, over {elapsed:.0f} s: {samples_per_s:,.1f} samples/s, "
          f"{bytes_per_s:,.0f} bytes/s ({bytes_per_s / samples_per_s:.2f} bytes/sample compressed)")
    # The shards also write their own metrics; the projection counts the replicas' series only,
    # at the measured compressed bytes per sample.
    per_sample = bytes_per_s / samples_per_s
    replica_samples = per_replica / interval
    fleet = MODELS * REPLICAS * CLUSTERS
    print(f"\nprojection: {MODELS} models x {REPLICAS} replicas x {CLUSTERS} clusters")
    print(f"  scraped series      {per_replica * fleet:>14,.0f}  ({per_replica} per replica)")
    print(f"  recorded series     {recorded * MODELS:>14,.0f}  ({recorded:.0f} per model, global; x{CLUSTERS} "
          "if evaluated per cluster)")
    print(f"  remote write        {replica_samples * fleet:>14,.0f} samples/s "
          f"({replica_samples:.1f} per replica: its series / {interval:.0f} s)")
    print(f"                      {replica_samples * fleet * per_sample / 1e6:>14,.2f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

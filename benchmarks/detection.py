"""Detection figures: time from a phase change to each alert firing and to its notification,
and false alarms during normal traffic, over several seeded runs against the native stack.

    python benchmarks/detection.py --profile demo --scenario demo --runs 3
    python benchmarks/detection.py --profile production --scenario customer-drop --runs 2

Each run starts a fresh stack (new TSDB), so runs do not see each other's history.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.settings import load_settings
from modelmon.simulate.scenarios import load_scenario
from modelmon.simulate.simulator import Simulator
from modelmon.simulate.timeline import AlertWatcher, detections
from modelmon.targets.host import free_port
from modelmon.targets.layout import APP, PROMETHEUS
from modelmon.targets.native import NativeStack


def run_once(model_dir: Path, profile_name: str, scenario_name: str, seed: int, settle: float,
             events_log: Path | None = None):
    ports = {f"{name}_port": free_port() for name in ("app", "prometheus", "alertmanager", "receiver")}
    settings = load_settings(profile_name).replace(**ports)
    profile = ReferenceProfile.load(profile_path(model_dir))
    scenario = load_scenario(scenario_name)
    with tempfile.TemporaryDirectory(prefix="modelmon-detect-") as tmp, \
            NativeStack(model_dir.resolve(), profile, settings, Path(tmp)) as stack:
        watcher = AlertWatcher(stack.url(PROMETHEUS), stack.notifications_file).start()
        result = Simulator(stack.url(APP), scenario, seed=seed, show_progress=False).run()
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and watcher.pending():
            time.sleep(0.5)
        time.sleep(2)
        watcher.stop()
    if events_log is not None:
        with events_log.open("a") as out:
            for e in watcher.events:
                out.write(json.dumps({"seed": seed, **asdict(e)}) + "\n")
            for p in result.phases:
                out.write(json.dumps({"seed": seed, "phase": p.name, "at": p.started_at}) + "\n")
    return detections(result.phases, watcher.events)


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):6.1f} / {max(values):6.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/stores"))
    parser.add_argument("--profile", choices=("demo", "production"), default="demo")
    parser.add_argument("--scenario", default="demo")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--events", type=Path, help="append every alert and notification event here (JSON lines)")
    args = parser.parse_args()
    settle = 30.0 if args.profile == "demo" else 240.0
    fired: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    notified: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    false_alarms = 0
    for run in range(args.runs):
        found, alarms = run_once(args.model, args.profile, args.scenario, args.seed + run, settle, args.events)
        false_alarms += len(alarms)
        for d in found:
            fired[(d.alert, d.detail, d.phase)].append(d.to_firing)
            if d.to_notified is not None:
                notified[(d.alert, d.detail, d.phase)].append(d.to_notified)
        print(f"run {run + 1}/{args.runs}: {len(found)} alerts fired, {len(alarms)} false alarms", file=sys.stderr)
    print(f"\nscenario {args.scenario!r}, profile {args.profile!r}, {args.runs} seeded runs "
          f"(seconds from the start of the phase; median / max)\n")
    print(f"{'alert':<24}{'labels':<26}{'phase':<18}{'fired in':>9}{'to firing':>17}{'to notification':>19}")
    for key in sorted(fired, key=lambda k: statistics.median(fired[k])):
        alert, detail, phase = key
        print(f"{alert:<24}{detail[:25]:<26}{phase:<18}{len(fired[key]):>5}/{args.runs:<3}"
              f"{_fmt(fired[key]):>17}{_fmt(notified[key]):>19}")
    print(f"\nfalse alarms (firing during the normal phase): {false_alarms} over {args.runs} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

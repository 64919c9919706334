"""Backtest figures for BENCHMARKS.md: false alarms over simulated weeks, detection delays,
and delay against the size of a shift, all with `modelmon backtest`'s engine (real promtool
and Prometheus over a simulated clock). Prints the markdown tables.

    .venv/bin/python benchmarks/backtest.py                  # everything
    .venv/bin/python benchmarks/backtest.py --only detection  # one part: weeks, detection, demo, shift, estimation
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from modelmon.backtest.result import Result, grace_of
from modelmon.backtest.run import backtest
from modelmon.model.loading import load_model
from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.settings import Settings, load_settings, seconds
from modelmon.simulate.scenarios import Scenario, load_scenario, parse_scenario

MODEL = Path(__file__).resolve().parents[1] / "models" / "stores"
TRAINING = {"items_count": {"normal": {"mean": 1782, "sd": 300}},
            "customers_count": {"normal": {"mean": 786, "sd": 265}}}


def run(scenario: Scenario, settings: Settings, seed: int = 0) -> Result:
    model = load_model(MODEL)
    return backtest(model, ReferenceProfile.load(profile_path(MODEL)), scenario, settings, seed=seed)


def weeks() -> None:
    settings = load_settings("production", env={})
    print("### Seven simulated days of `normal` traffic (production settings)\n")
    print("| rate | rows | false alarms (alert: count) | wall time |")
    print("|---|---|---|---|")
    for rate in ("100/min", "10/min"):
        per_second = 100 / 60 if rate == "100/min" else 10 / 60
        scenario = load_scenario("normal").at_rate(per_second).lasting(seconds("7d"))
        began = time.perf_counter()
        result = run(scenario, settings)
        false = result.false_alarms(grace_of(settings))["by_alert"]
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(false.items())) or "none"
        print(f"| {rate} | {result.rows} | {shown} | {time.perf_counter() - began:.0f} s "
              f"({', '.join(f'{k} {v:.0f} s' for k, v in result.timings.items())}) |")
    print()


def _delays(name: str, scenario: Scenario, settings: Settings, seeds: int) -> dict[tuple[str, str], list[float]]:
    found: dict[tuple[str, str], list[float]] = {}
    for seed in range(seeds):
        result = run(scenario, settings, seed)
        for d in result.detections():
            found.setdefault((d["phase"], d["alert"]), []).append(d["delay_seconds"])
        false = result.false_alarms(grace_of(settings))["by_alert"]
        if false:
            print(f"<!-- {name} seed {seed}: false alarms {false} -->")
    return found


def detection(seeds: int = 3) -> None:
    settings = load_settings("production", env={})
    print(f"### Detection at 100 requests/min (production settings, {seeds} seeds: median / max)\n")
    print("| scenario | phase | alert | fired in | after the phase began, s |")
    print("|---|---|---|---|---|")
    for name in ("customer-drop", "workshop", "gradual-drift"):
        scenario = load_scenario(name).at_rate(100 / 60)
        for (phase, alert), delays in sorted(_delays(name, scenario, settings, seeds).items()):
            print(f"| {name} | {phase} | {alert} | {len(delays)}/{seeds} | "
                  f"{statistics.median(delays):.0f} / {max(delays):.0f} |")
    print("\n`gradual-drift` slides the customers' mean from 786 to 450 over 10 minutes: after t seconds it "
          "has moved by 336 * t / 600.\n")


def demo(seeds: int = 3) -> None:
    settings = load_settings("demo", env={})
    scenario = load_scenario("demo")
    print(f"### The `demo` scenario with the demo settings ({seeds} seeds: median / max)\n")
    print("| phase | alert | fired in | after the phase began, s |")
    print("|---|---|---|---|")
    for (phase, alert), delays in sorted(_delays("demo", scenario, settings, seeds).items()):
        print(f"| {phase} | {alert} | {len(delays)}/{seeds} | {statistics.median(delays):.1f} / {max(delays):.1f} |")
    print()


def shift(seeds: int = 2) -> None:
    settings = load_settings("production", env={})
    print(f"### Delay against the size of the shift (customers' mean moved down; 100 requests/min, production "
          f"settings, {seeds} seeds: median / max; '-' never in the 60 minutes)\n")
    alerts = ("ModelFeatureDrift(customers_count)", "ModelPredictionDrift", "ModelLowPositiveRate")
    print("| customers' mean moved by | " + " | ".join(alerts) + " |")
    print("|---|" + "---|" * len(alerts))
    for moved in (0.05, 0.10, 0.20, 0.40):
        scenario = parse_scenario({"name": f"shift {moved:.0%}", "rate": "100/min", "phases": [
            {"name": "normal", "healthy": True, "duration": "30m", "features": TRAINING},
            {"name": "shifted", "duration": "60m", "features": {
                **TRAINING, "customers_count": {"normal": {"mean": 786 * (1 - moved), "sd": 265}}}},
        ]}, "benchmark")
        found = _delays(scenario.name, scenario, settings, seeds)
        cells = []
        for alert in alerts:
            delays = found.get(("shifted", alert), [])
            cells.append(f"{statistics.median(delays):.0f} / {max(delays):.0f} s ({len(delays)}/{seeds})"
                         if delays else "-")
        print(f"| {moved:.0%} (to {786 * (1 - moved):.0f}) | " + " | ".join(cells) + " |")
    print()


def estimation(seeds: int = 3) -> None:
    """Estimated minus realized accuracy over back-to-back 5-minute windows with 200 labels or more."""
    settings = load_settings("production", env={"MODELMON_QUALITY_WINDOW": "5m"})
    print(f"### Estimated against realized accuracy (production settings, quality window 5m, {seeds} seeds, "
          "windows with 200 labels or more)\n")
    print("| scenario | rate | phase | windows | median \\|gap\\| | worst \\|gap\\| | mean gap (estimated - realized) "
          "| ModelConceptDrift / ModelEstimatedQualityDrop fired |")
    print("|---|---|---|---|---|---|---|---|")
    for name, hours, rate in (("customer-drop", 1.0, None), ("gradual-drift", 1.5, None), ("workshop", 1.0, None),
                              ("workshop", 1.0, 20.0), ("concept-drift", 1.0, None)):
        scenario = load_scenario(name).lasting(hours * 3600)
        if rate is not None:
            scenario = scenario.at_rate(rate)
        gaps: dict[str, list[float]] = {}
        windows: dict[str, int] = {}
        fired: dict[str, set[str]] = {}
        for seed in range(seeds):
            result = run(scenario, settings, seed)
            for phase, e in result.estimation_error(min_labels=200).items():
                gaps.setdefault(phase, []).extend([e["median_abs"], e["worst_abs"], e["mean_signed"]])
                windows[phase] = windows.get(phase, 0) + e["windows"]
            for d in result.detections():
                if d["alert"] in ("ModelConceptDrift", "ModelEstimatedQualityDrop"):
                    fired.setdefault(d["phase"], set()).add(f"{d['alert']} {d['delay_seconds']:.0f} s")
        per_second = scenario.phases[0].rate
        shown_rate = f"{per_second * 60:.0f}/min" if per_second < 1 else f"{per_second:g}/s"
        for phase, values in gaps.items():
            medians, worsts, means = values[0::3], values[1::3], values[2::3]
            print(f"| {name} | {shown_rate} | {phase} | {windows[phase]} | {statistics.median(medians) * 100:.1f} pts | "
                  f"{max(worsts) * 100:.1f} pts | {statistics.mean(means) * 100:+.1f} pts | "
                  f"{', '.join(sorted(fired.get(phase, set()))) or 'none'} |")
    print("\nMedian: the median over seeds of each run's median window; worst: over all windows of all seeds.\n")


PARTS = {"weeks": weeks, "detection": detection, "demo": demo, "shift": shift, "estimation": estimation}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(PARTS), action="append", help="run only these parts")
    args = parser.parse_args()
    for name in args.only or PARTS:
        PARTS[name]()
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`modelmon demo`: the whole story on a fresh machine in about three minutes.

Train the stores model if it is missing, start the native stack with the demo profile, send
normal traffic, then a drop in customers, then the workshop's faulty traffic, and print when
each alert fired and where its notification went.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.report.writer import PhaseMark, write_report
from modelmon.settings import Settings
from modelmon.simulate.scenarios import load_scenario
from modelmon.simulate.simulator import Simulator
from modelmon.simulate.timeline import AlertWatcher, render_timeline
from modelmon.targets.host import StackError, check_port_free, free_port
from modelmon.targets.layout import ALERTMANAGER, APP, NATIVE_PARTS, PROMETHEUS
from modelmon.targets.native import NativeStack


def ensure_stores_model(model_dir: Path, data_csv: Path) -> None:
    """Train the embedded model (and write its dataset) when they are not there yet."""
    from modelmon.workshop.data import generate_stores, read_csv, write_csv
    from modelmon.workshop.train import train_stores

    if (model_dir / "MLmodel").is_file():
        return
    if not data_csv.exists():
        write_csv(generate_stores(), data_csv)
        print(f"wrote the stores dataset to {data_csv}")
    train_stores(read_csv(data_csv), model_dir)
    print(f"trained the stores model into {model_dir}")


def ports_that_are_free(settings: Settings) -> Settings:
    """The demo must run on a fresh machine, where installing Debian's prometheus packages
    may have started their own services on 9090 and 9093: move to free ports, and say so."""
    for part in NATIVE_PARTS:
        port = part.port(settings)
        try:
            check_port_free(settings.host, port, part.name)
        except StackError:
            free = free_port(settings.host)
            settings = part.moved(settings, free)
            print(f"port {port} is taken (another {part.name}?): the demo's {part.name} uses {free}")
    return settings


def run_demo(model_dir: Path, data_csv: Path, settings: Settings, run_dir: Path, scenario_name: str = "demo",
             seed: int = 0, keep_running: bool = True, settle: float = 20.0) -> int:
    ensure_stores_model(model_dir, data_csv)
    profile = ReferenceProfile.load(profile_path(model_dir))
    scenario = load_scenario(scenario_name)
    settings = ports_that_are_free(settings)
    stack = NativeStack(model_dir.resolve(), profile, settings, run_dir)
    stack.start()
    try:
        print(f"\nmodelmon demo: stack up in {run_dir}")
        for what, url in stack.urls().items():
            print(f"  {what:32} {url}")
        print(f"\nscenario {scenario.name!r} ({scenario.duration:.0f} s): {scenario.description}\n", flush=True)
        watcher = AlertWatcher(stack.url(PROMETHEUS), stack.notifications_file).start()
        result = Simulator(stack.url(APP), scenario, seed=seed).run()
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and watcher.pending():
            time.sleep(0.5)  # let pending alerts finish their `for` and notify
        time.sleep(2)
        watcher.stop()
        print("\n" + result.table())
        print("\ntimeline (time from start, and from the phase's start):")
        print(render_timeline(result.phases, watcher.events))
        phases = [PhaseMark(p.name, p.started_at) for p in result.phases]
        stack.layout.phases.write_text(json.dumps([asdict(p) for p in phases]))
        board = json.loads(stack.layout.dashboard.read_text())
        since = time.time() - result.phases[0].started_at + 15
        page = write_report(stack.url(PROMETHEUS), board, profile.model, run_dir / "report", since, phases)
        print(f"\nreport: {page}  (one PNG per panel in {page.parent / 'panels'})")
        print(f"notifications (Slack stand-in): {stack.notifications_file}")
        print(f"Prometheus alerts: {stack.url(PROMETHEUS)}/alerts   Alertmanager: {stack.url(ALERTMANAGER)}")
        if keep_running:
            print("\nthe stack keeps running; Ctrl-C stops it.", flush=True)
            stack.run_until_interrupted()
    finally:
        stack.stop()
    return 0

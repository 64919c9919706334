"""`modelmon backtest`: days of traffic through the real model and metrics code on a simulated
clock, and the generated rules evaluated over them by Prometheus itself.

How often an alert cries wolf cannot be measured live: a week of healthy traffic takes a
week. Here a scenario is played as fast as the model can predict: every scrape interval,
the rows that arrived in it (Poisson at the phase's rate, drawn from its distributions) go
through the server's own `Predictor` into a fresh registry, their ground truth through the
same `FeedbackMetrics` when its delay has passed, and the samples that the rules read are
kept at the scrape's timestamp. Then, with Prometheus' own tools and engine:

1. the scrapes are written as OpenMetrics and backfilled into a TSDB
   (`promtool tsdb create-blocks-from openmetrics`);
2. the recording rules are backfilled over the whole span in dependency order
   (`promtool tsdb create-blocks-from rules`, which cannot read a series it is backfilling
   in the same pass), against a Prometheus serving that TSDB, restarted to see each level;
3. each alert's expression is evaluated as a range query at the evaluation interval, and
   its `for` applied as Prometheus' rule manager does.

What differs from a live stack, on purpose: no HTTP layer (latency, 5xx and scrape-failure
alerts have nothing to see), and no staleness markers for recorded series, so a recorded
series that stops (no traffic at all) is still read for the lookback window.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# The simulated clock starts here (a fixed instant, so runs are reproducible to the sample).
from modelmon.backtest.engine import evaluate, rule_names
from modelmon.backtest.player import Played, play, play_log
from modelmon.backtest.result import Result
from modelmon.model.loading import LoadedModel
from modelmon.model.reference import ReferenceProfile
from modelmon.monitoring.predictionstore import PredictionStore, store_url
from modelmon.rules.files import rule_files
from modelmon.rules.series import Names
from modelmon.settings import Settings, seconds
from modelmon.simulate.scenarios import Scenario


def backtest(model: LoadedModel, profile: ReferenceProfile, scenario: Scenario, settings: Settings,
             seed: int = 0, workdir: Path | None = None) -> Result:
    """Play `scenario` on a simulated clock and evaluate the rules over it (see the module)."""
    scenario.check_features([f.name for f in profile.served_features(model.features)])
    return _run(model, profile, settings, scenario.name, workdir,
                lambda keep: play(model, profile, scenario, settings, keep, seed))


def backtest_log(model: LoadedModel, profile: ReferenceProfile, log: str, settings: Settings,
                 workdir: Path | None = None) -> Result:
    """Replay a prediction log (a SQLite file or SQLAlchemy URL): its predictions at the times
    they were made, their labels when they arrived, under `settings`."""
    store = PredictionStore(store_url(log))
    try:
        logged = store.history(profile.model)
    finally:
        store.close()
    return _run(model, profile, settings, f"prediction log {log}", workdir,
                lambda keep: play_log(model, profile, logged, settings, keep))


def _run(model: LoadedModel, profile: ReferenceProfile, settings: Settings, name: str, workdir: Path | None,
         player: Callable[[set[str]], Played]) -> Result:
    files = rule_files(profile, settings)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    played = player(rule_names(files))
    timings["play"] = time.perf_counter() - began
    n = Names.of(settings)
    read = {"estimated": n.estimated_accuracy, "realized": n.accuracy, "labels": n.labels_increase} \
        if profile.probabilities else {}
    with tempfile.TemporaryDirectory(prefix="modelmon-backtest-") as tmp:
        work = workdir or Path(tmp)
        episodes, quality = evaluate(files, played, settings, work, timings, read)
    return Result(name, settings.profile, played.phases[-1].end, played.phases, episodes, played.rows,
                  played.labels, timings, played.origin, quality, seconds(settings.quality_window))

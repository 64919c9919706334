"""The simulated-clock player: a scenario (or a prediction log) played scrape interval by scrape
interval through the server's own Predictor and metrics code.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

# The simulated clock starts here (a fixed instant, so runs are reproducible to the sample).
from modelmon.backtest.recorder import EPOCH, Scrapes, json_of, typed_samples
from modelmon.backtest.result import BacktestError, PhaseSpan
from modelmon.model.loading import LoadedModel, Prediction
from modelmon.model.reference import ReferenceProfile
from modelmon.monitoring.feedback import Truths
from modelmon.monitoring.metrics import FeedbackMetrics
from modelmon.monitoring.monitor import Monitor
from modelmon.monitoring.predictionstore import LoggedPrediction
from modelmon.serving.predictor import Answers, Predictor
from modelmon.settings import Settings, seconds
from modelmon.simulate.scenarios import Phase, Scenario


@dataclass
class Played:
    scrapes: Scrapes
    phases: list[PhaseSpan]
    rows: int
    labels: int
    origin: float | None = None  # the wall-clock instant of second 0 (a replayed log), else None


_CHUNK_SECONDS = 3600.0  # rows drawn and predicted an hour of simulated time at a time


class _Player:
    """A fresh registry with the server's metrics and Predictor, fed rows scrape by scrape of
    simulated time; ground truth queued until it arrives."""

    def __init__(self, model: LoadedModel, profile: ReferenceProfile, settings: Settings, keep: set[str]) -> None:
        registry = CollectorRegistry()
        self.model = model
        self.regression = profile.regression
        monitor = Monitor.for_model(model, profile, registry)
        self.metrics = monitor.metrics
        self.feedback = FeedbackMetrics(profile, registry, model.version)
        self.predictor = Predictor(model, monitor)
        self.scraped = registry.restricted_registry(sorted(keep))
        self.step = seconds(settings.scrape_interval)
        self.scrapes = Scrapes(keep)
        self.pending: list[tuple[float, int, str, Any, float]] = []  # (arrives, tie, actual, predicted, delay)
        self.rows = self.labels = 0

    def label_later(self, arrives: float, actual: str, predicted: Any, delay: float) -> None:
        heapq.heappush(self.pending, (arrives, len(self.pending) + self.labels, actual, predicted, delay))

    def chunk(self, ticks: np.ndarray, counts: np.ndarray, columns: Mapping[str, list[Any]],
              invalid: np.ndarray | None = None,
              on_rows: Callable[[slice, Answers], None] | None = None) -> None:
        """The rows of several scrape intervals (`counts[k]` arrived before `ticks[k]`, in
        order), predicted in one model call and observed interval by interval."""
        arrays = self.model.columns(dict(columns), self.predictor.features)
        prediction = self.model.predict_columns(arrays) if counts.sum() else None
        ends = np.cumsum(counts)
        for k, tick in enumerate(ticks.tolist()):
            for _ in range(int(invalid[k]) if invalid is not None else 0):
                self.metrics.invalid("wrong_type")
            lo, hi = int(ends[k] - counts[k]), int(ends[k])
            if hi > lo and prediction is not None:
                part = slice(lo, hi)
                answers = self.predictor.answer({n: a[part] for n, a in arrays.items()}, _rows(prediction, part),
                                                0.0, hi - lo)
                self.rows += hi - lo
                if on_rows is not None:
                    on_rows(part, answers)
            while self.pending and self.pending[0][0] <= tick:
                _, _, actual, predicted, delay = heapq.heappop(self.pending)
                if self.regression:
                    self.feedback.measured(float(predicted), float(actual), delay, self.model.version)
                else:
                    self.feedback.labelled(actual, predicted, delay, self.model.version)
                self.labels += 1
            self.scrapes.scrape(self.scraped, EPOCH + tick)


def play(model: LoadedModel, profile: ReferenceProfile, scenario: Scenario, settings: Settings,
         keep: set[str], seed: int = 0) -> Played:
    """Every row of the scenario through the Predictor and the metrics, scraped every
    scrape interval of simulated time. Rows are drawn and predicted an hour at a time (one
    model call), then observed scrape by scrape, as the server would have."""
    rng = np.random.default_rng(seed)
    player = _Player(model, profile, settings, keep)
    truths = Truths(profile)
    names = [f.name for f in profile.served_features(model.features)]
    step = player.step
    spans = []
    t = 0.0
    for phase in scenario.phases:
        start = t
        spans.append(PhaseSpan(phase.name, start, start + phase.duration, phase.healthy))
        ticks = np.arange(start + step, start + phase.duration + 1e-9, step)
        per_chunk = max(1, int(_CHUNK_SECONDS / step))
        for first in range(0, ticks.size, per_chunk):
            chunk = ticks[first:first + per_chunk]
            counts = rng.poisson(phase.rate * step, chunk.size)
            invalid = rng.binomial(counts, phase.invalid_share) if phase.invalid_share else np.zeros_like(counts)
            counts = counts - invalid
            arrived = np.repeat(chunk - step, counts) + rng.random(int(counts.sum())) * step
            progress = np.clip((arrived - start) / phase.duration, 0.0, 1.0)
            typed = {name: typed_samples(model, name, phase.features[name].sample(rng, progress)) for name in names}

            def labels(part: slice, answers: Answers, phase: Phase = phase,
                       typed: dict[str, np.ndarray] = typed, arrived: np.ndarray = arrived) -> None:
                _labels_of(phase, {n: v[part] for n, v in typed.items()}, answers, arrived[part], truths, rng,
                           player)

            player.chunk(chunk, counts, {name: json_of(values) for name, values in typed.items()}, invalid, labels)
        t = start + phase.duration
    return Played(player.scrapes, spans, player.rows, player.labels)


def play_log(model: LoadedModel, profile: ReferenceProfile, logged: Sequence[LoggedPrediction], settings: Settings,
             keep: set[str]) -> Played:
    """The logged predictions through the Predictor and the metrics at the times they were
    made, and their labels at the times they arrived: one phase, `logged traffic`."""
    if not logged:
        raise BacktestError("The prediction log holds no predictions of this model; serve it with a prediction "
                            "log (the `prediction_log` setting) first.")
    player = _Player(model, profile, settings, keep)
    names = [f.name for f in profile.served_features(model.features)]
    step = player.step
    origin = math.floor(logged[0].predicted_at / step) * step - step  # the first row in the first interval
    times = np.array([p.predicted_at - origin for p in logged])
    last = max([times[-1], *(p.labelled_at - origin for p in logged if p.labelled_at is not None)])
    span = (math.floor(last / step) + 1) * step  # until the last label arrived
    ticks = np.arange(step, span + 1e-9, step)
    per_chunk = max(1, int(_CHUNK_SECONDS / step))
    for p in logged:
        if p.actual is not None and p.labelled_at is not None:
            player.label_later(p.labelled_at - origin, p.actual, p.prediction, max(p.labelled_at - p.predicted_at, 0))
    for first in range(0, ticks.size, per_chunk):
        chunk = ticks[first:first + per_chunk]
        lo, hi = np.searchsorted(times, [chunk[0] - step, chunk[-1]], side="right")
        counts = np.diff(np.searchsorted(times, np.concatenate([[chunk[0] - step], chunk]), side="right"))
        rows = logged[lo:hi]
        player.chunk(chunk, counts, {name: [p.inputs.get(name) for p in rows] for name in names})
    return Played(player.scrapes, [PhaseSpan("logged traffic", 0.0, span, False)], player.rows, player.labels,
                   origin)


def _rows(prediction: Prediction, part: slice) -> Prediction:
    probabilities = prediction.probabilities
    return Prediction(prediction.values[part], None if probabilities is None else probabilities[part],
                      prediction.classes)


def _labels_of(phase: Phase, columns: Mapping[str, np.ndarray], answers: Answers,
               arrived: np.ndarray, truths: Truths, rng: np.random.Generator, player: _Player) -> None:
    """Queue the ground truth of a share of the rows, to arrive after the phase's delay (as
    the simulator sends it to /feedback)."""
    fb = phase.feedback
    if fb is None or fb.share <= 0:
        return
    chosen = np.flatnonzero(rng.random(len(answers)) < fb.share)
    if not chosen.size:
        return
    actual = fb.truth.actual({name: values[chosen] for name, values in columns.items()}, rng)
    delays = np.clip(fb.delay.sample(rng, np.zeros(chosen.size)), 0.0, None)
    for i, raw, delay in zip(chosen.tolist(), actual, delays.tolist(), strict=True):
        label = truths(raw)
        predicted = answers.predictions[i] if answers.labels is None else answers.labels[i]
        if label is not None and predicted is not None:
            player.label_later(float(arrived[i]) + delay, label, predicted, delay)

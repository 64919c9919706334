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

import bisect
import heapq
import json
import math
import re
import shutil
import signal
import subprocess
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from prometheus_client import CollectorRegistry

from modelmon.errors import ModelmonError
from modelmon.model.loading import LoadedModel, Prediction
from modelmon.model.profile import ReferenceProfile
from modelmon.monitoring.feedback import Truths
from modelmon.monitoring.metrics import FeedbackMetrics
from modelmon.monitoring.monitor import Monitor
from modelmon.monitoring.predictionlog import LoggedPrediction, PredictionStore, store_url
from modelmon.rules.files import rule_files
from modelmon.rules.series import JOB, Names
from modelmon.serving.predictor import Answers, Predictor
from modelmon.settings import Settings, seconds
from modelmon.simulate.scenarios import Phase, Scenario
from modelmon.targets.host import check_port_free, find_binary, free_port

# The simulated clock starts here (a fixed instant, so runs are reproducible to the sample).
EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
_BLOCK = 7200.0  # promtool's block length: its backfill aligns blocks to multiples of two hours
_GAUGE_HEARTBEAT = 60.0  # a gauge that does not change is written this often (lookback is 5 m)
_QUERY_STEPS = 10_000  # Prometheus answers at most 11,000 points per series and query
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class BacktestError(ModelmonError):
    """The backtest cannot run; the message says what to do."""


@dataclass(frozen=True)
class PhaseSpan:
    name: str
    start: float  # seconds from the start of the backtest
    end: float
    healthy: bool


@dataclass(frozen=True)
class Episode:
    """One alert series firing: its condition held from `active`, it fired at `fired` (after
    its `for`) and held until `ended` (seconds from the start)."""

    alert: str
    labels: dict[str, str]
    active: float
    fired: float
    ended: float

    @property
    def series(self) -> str:
        shown = {k: v for k, v in sorted(self.labels.items()) if k not in ("model", "job", "severity")}
        return self.alert + ("(" + ", ".join(shown.values()) + ")" if shown else "")


@dataclass
class Result:
    scenario: str
    settings_profile: str
    span: float  # simulated seconds
    phases: list[PhaseSpan]
    episodes: list[Episode]
    rows: int
    labels: int
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per step
    origin: float | None = None  # a replayed log: the Unix time of second 0 (episodes are relative to it)
    # A classifier with probabilities: "estimated" and "realized" accuracy and the "labels"
    # over the quality window, as (seconds from the start, value) at each evaluation.
    quality: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    quality_window: float = 0.0

    def estimation_error(self, min_labels: float = 200) -> dict[str, dict[str, float]]:
        """Per phase, estimated minus realized accuracy over whole quality windows inside it
        (back to back, not overlapping) that hold at least `min_labels` labels: how many, the
        median and worst absolute gap, and the mean signed one."""
        if not self.quality or self.quality_window <= 0:
            return {}
        at = {key: dict(points) for key, points in self.quality.items()}
        times = np.array(sorted(at.get("estimated", {})))
        out = {}
        for phase in self.phases:
            gaps = []
            t = phase.start + self.quality_window
            while t <= phase.end + 1e-9 and times.size:
                # The evaluation nearest the window's end.
                k = int(np.clip(np.searchsorted(times, t), 1, times.size - 1)) if times.size > 1 else 0
                key = float(min(times[max(k - 1, 0)], times[k], key=lambda s: abs(s - t)))
                if (abs(key - t) < self.quality_window / 10 and key in at.get("realized", {})
                        and at.get("labels", {}).get(key, 0.0) >= min_labels):
                    gaps.append(at["estimated"][key] - at["realized"][key])
                t += self.quality_window
            if gaps:
                size = np.abs(np.array(gaps))
                out[phase.name] = {"windows": len(gaps), "median_abs": float(np.median(size)),
                                   "worst_abs": float(size.max()), "mean_signed": float(np.mean(gaps))}
        return out

    def detections(self) -> list[dict[str, Any]]:
        """For each phase not marked healthy, the first firing of each alert series in it."""
        out = []
        for phase in (p for p in self.phases if not p.healthy):
            first: dict[str, Episode] = {}
            for e in sorted(self.episodes, key=lambda e: e.fired):
                if phase.start <= e.fired < phase.end:
                    first.setdefault(e.series, e)
            for series, e in sorted(first.items()):
                out.append({"phase": phase.name, "alert": series, "delay_seconds": round(e.fired - phase.start, 3)})
        return out

    def false_alarms(self, grace: float) -> dict[str, Any]:
        """Episodes that fired in a healthy phase, `grace` seconds after a change from an
        unhealthy one (the windows still hold that one's traffic), per alert series; and the
        simulated days of healthy traffic they are counted over."""
        counted: dict[str, int] = {}
        healthy_seconds = 0.0
        for i, phase in enumerate(self.phases):
            if not phase.healthy:
                continue
            after_change = i > 0 and not self.phases[i - 1].healthy
            start = phase.start + (grace if after_change else 0.0)
            healthy_seconds += max(0.0, phase.end - start)
            for e in self.episodes:
                if start <= e.fired < phase.end:
                    counted[e.series] = counted.get(e.series, 0) + 1
        days = healthy_seconds / 86_400
        return {"healthy_days": round(days, 4), "by_alert": counted,
                "per_day": {k: round(v / days, 4) for k, v in counted.items()} if days else {}}

    def summary(self, grace: float) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "settings_profile": self.settings_profile,
            "simulated_seconds": self.span, "origin_unix_seconds": self.origin, "rows": self.rows,
            "labels": self.labels, "phases": [asdict(p) for p in self.phases],
            "episodes": [{**asdict(e), "series": e.series} for e in self.episodes],
            "detections": self.detections(), "false_alarms": self.false_alarms(grace),
            "estimation_error": self.estimation_error(),
            "wall_seconds": {k: round(v, 2) for k, v in self.timings.items()},
        }

    def table(self, grace: float) -> str:
        false = self.false_alarms(grace)
        lines = [f"{self.scenario}: {self.span / 3600:.2f} simulated hours, {self.rows} rows, {self.labels} labels, "
                 f"settings {self.settings_profile}; played and evaluated in "
                 f"{sum(self.timings.values()):.0f} s"]
        lines.append("")
        lines.append(f"{'phase':<22}{'alert':<44}{'fired after the phase began':>28}")
        detections = self.detections()
        for d in detections:
            lines.append(f"{d['phase']:<22}{d['alert']:<44}{d['delay_seconds']:>26.1f} s")
        for phase in (p for p in self.phases if not p.healthy):
            if not any(d["phase"] == phase.name for d in detections):
                lines.append(f"{phase.name:<22}{'(no alert fired)':<44}")
        lines.append("")
        lines.append("Firing episodes (from the start; the first 20):" if self.episodes else "Firing episodes: none")
        for e in self.episodes[:20]:
            lines.append(f"  {e.series:<42} fired at {_clock(e.fired)}, held until {_clock(e.ended)}")
        lines.append("")
        lines.append(f"False alarms in healthy phases ({false['healthy_days']:.3f} simulated days):")
        if not false["by_alert"]:
            lines.append("  none")
        for series, count in sorted(false["by_alert"].items()):
            lines.append(f"  {series:<42}{count:>6}  ({false['per_day'][series]:.2f} per day)")
        error = self.estimation_error()
        if error:
            lines.append("")
            lines.append(f"Estimated minus realized accuracy, per {self.quality_window:.0f} s window with 200 labels or "
                         "more:")
            for name, gap in error.items():
                lines.append(f"  {name:<22}{gap['windows']:>4} windows  median |gap| {gap['median_abs'] * 100:.1f} points, "
                             f"worst {gap['worst_abs'] * 100:.1f}, mean {gap['mean_signed'] * 100:+.1f}")
        return "\n".join(lines)


def _clock(t: float) -> str:
    days, rest = divmod(round(t), 86_400)
    text = time.strftime("%H:%M:%S", time.gmtime(rest))
    return f"day {days + 1} {text}" if days else text


def grace_of(settings: Settings) -> float:
    """How long after a change back to healthy traffic a firing is still the change's: the
    longest window plus `for`."""
    return max(seconds(settings.rate_window), seconds(settings.drift_window)) + seconds(settings.alert_for)


# -- 1. Play: the scrapes of a scenario on a simulated clock.


class _Scrapes:
    """The samples the rules read, per series, at each scrape; written as OpenMetrics."""

    def __init__(self, keep: set[str]) -> None:
        self.keep = keep
        self.types: dict[str, str] = {}  # family -> type
        self.series: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[array[float], array[float]]] = {}
        self._last: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[float, float]] = {}

    def scrape(self, registry: Any, t: float) -> None:
        for family in registry.collect():
            for sample in family.samples:
                if sample.name not in self.keep or sample.name.endswith("_created"):
                    continue
                self.types[family.name] = family.type
                labels = tuple(sorted({**sample.labels, "job": JOB}.items()))
                key = (family.name, sample.name, labels)
                if family.type == "gauge":
                    last = self._last.get(key)
                    if last is not None and last[1] == sample.value and t - last[0] < _GAUGE_HEARTBEAT:
                        continue
                    self._last[key] = (t, sample.value)
                times, values = self.series.setdefault(key, (array("d"), array("d")))
                times.append(t)
                values.append(float(sample.value))

    def write(self, folder: Path) -> list[Path]:
        """OpenMetrics, one file per two-hour block (promtool reads its whole input once per
        block it writes, so one file for days would be read dozens of times); in each, each
        family's series together, each series in time order."""
        if not self.series:
            return []
        times = [t for ts, _ in self.series.values() for t in (ts[0], ts[-1])]
        first, last = int(min(times) // _BLOCK), int(max(times) // _BLOCK)
        files = []
        for block in range(first, last + 1):
            low, high = block * _BLOCK, (block + 1) * _BLOCK
            path = folder / f"scrapes-{block}.om"
            with path.open("w") as out:
                for family in sorted(self.types):
                    out.write(f"# TYPE {family} {self.types[family]}\n")
                    for (fam, name, labels), (ts, values) in sorted(self.series.items()):
                        if fam != family:
                            continue
                        a, b = bisect.bisect_left(ts, low), bisect.bisect_left(ts, high)
                        head = name + "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"
                        out.writelines(f"{head} {v!r} {t:.3f}\n" for t, v in zip(ts[a:b], values[a:b], strict=True))
                out.write("# EOF\n")
            files.append(path)
        return files


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _rule_names(files: Mapping[str, str]) -> set[str]:
    names: set[str] = set()
    for text in files.values():
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                names |= set(_NAME.findall(rule["expr"]))
    return names


def _typed(model: LoadedModel, name: str, values: np.ndarray) -> np.ndarray:
    """A column as the simulator sends it: integers rounded and clipped to the declared bounds."""
    feature = next(f for f in model.features if f.name == name)
    if values.dtype != object and feature.numeric:
        if feature.minimum is not None or feature.maximum is not None:
            values = np.clip(values, feature.minimum, feature.maximum)
        if feature.kind == "integer":
            values = np.rint(values)
    return values


def _json(values: np.ndarray) -> list[Any]:
    """A column as request rows carry it: missing values as None."""
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values.tolist()]


@dataclass
class _Played:
    scrapes: _Scrapes
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
        self.scrapes = _Scrapes(keep)
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
         keep: set[str], seed: int = 0) -> _Played:
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
            typed = {name: _typed(model, name, phase.features[name].sample(rng, progress)) for name in names}

            def labels(part: slice, answers: Answers, phase: Phase = phase,
                       typed: dict[str, np.ndarray] = typed, arrived: np.ndarray = arrived) -> None:
                _labels_of(phase, {n: v[part] for n, v in typed.items()}, answers, arrived[part], truths, rng,
                           player)

            player.chunk(chunk, counts, {name: _json(values) for name, values in typed.items()}, invalid, labels)
        t = start + phase.duration
    return _Played(player.scrapes, spans, player.rows, player.labels)


def play_log(model: LoadedModel, profile: ReferenceProfile, logged: Sequence[LoggedPrediction], settings: Settings,
             keep: set[str]) -> _Played:
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
    return _Played(player.scrapes, [PhaseSpan("logged traffic", 0.0, span, False)], player.rows, player.labels,
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


# -- 2 and 3. Backfill the scrapes and the recording rules into a TSDB.


def _levels(recording: Sequence[Mapping[str, str]]) -> list[list[Mapping[str, str]]]:
    """Recording rules grouped so that each reads only series of earlier groups."""
    names = {r["record"] for r in recording}
    level: dict[str, int] = {}
    for rule in recording:  # generated in evaluation order: what a rule reads comes before it
        reads = set(_NAME.findall(rule["expr"])) & names - {rule["record"]}
        level[rule["record"]] = max(level.get(rule["record"], 0), 1 + max((level.get(r, 0) for r in reads), default=0))
    depth = max(level.values(), default=0)
    return [[r for r in recording if level[r["record"]] == k] for k in range(1, depth + 1)]


@contextmanager
def _prometheus(binary: str, tsdb: Path, config: Path, port: int, log: Path) -> Iterator[str]:
    """A Prometheus serving the TSDB, scraping nothing, until the block exits."""
    check_port_free("127.0.0.1", port, "prometheus")
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
                                    "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}",
                                    "--query.max-samples=200000000"],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise BacktestError(f"Prometheus stopped while opening the backfilled TSDB; see {log}.")
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BacktestError(f"Prometheus did not become ready on the backfilled TSDB in 120 s; see {log}.")
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _promtool(promtool: str, *args: str, what: str) -> None:
    done = subprocess.run([promtool, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BacktestError(f"promtool could not {what}: {(done.stderr or done.stdout).strip()[-600:]}")


def _backfill_rules(promtool: str, url: str, rules: Sequence[Mapping[str, str]], out: Path, start: float,
                    end: float, interval: str) -> Path:
    """The blocks of `rules` over [start, end], evaluated by the Prometheus at `url`."""
    source = out.with_suffix(".yml")
    source.write_text(yaml.safe_dump({"groups": [{"name": out.name, "rules": list(rules)}]}))
    _promtool(promtool, "tsdb", "create-blocks-from", "rules", f"--start={int(start)}", f"--end={int(end)}",
              f"--url={url}", f"--eval-interval={interval}", f"--output-dir={out}", str(source),
              what=f"backfill recording rules ({out.name})")
    return out


def _move_blocks(source: Path, tsdb: Path) -> None:
    for block in source.iterdir():
        if block.is_dir() and (block / "meta.json").exists():
            shutil.move(str(block), tsdb / block.name)


def _query_range(url: str, expr: str, start: float, end: float, step: float) -> dict[tuple[tuple[str, str], ...],
                                                                                    list[float]]:
    """Evaluation times (unix seconds) at which each output series of `expr` exists."""
    return {key: [t for t, _ in points] for key, points in _range(url, expr, start, end, step).items()}


def _range(url: str, expr: str, start: float, end: float, step: float) -> dict[tuple[tuple[str, str], ...],
                                                                              list[tuple[float, float]]]:
    """(unix seconds, value) of each output series of `expr` at each evaluation where it exists."""
    out: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    chunk = step * _QUERY_STEPS
    t = start
    with httpx.Client(timeout=600) as client:
        while t <= end:
            stop = min(end, t + chunk - step)
            answer = client.post(url + "/api/v1/query_range",
                                 data={"query": expr, "start": repr(t), "end": repr(stop), "step": repr(step)})
            body = answer.json()
            if body.get("status") != "success":
                raise BacktestError(f"Prometheus refused the expression {expr!r}: {body.get('error', answer.text)}")
            for series in body["data"]["result"]:
                # An alert's labels are its expression's output labels but the name: the
                # branches of an `or` make one alert series.
                key = tuple(sorted((k, v) for k, v in series["metric"].items() if k != "__name__"))
                out.setdefault(key, []).extend((float(ts), float(v)) for ts, v in series["values"])
            t = stop + step
    return out


def _check_recorded(url: str, record: str, start: float, end: float, step: float) -> None:
    """Refuse to score alerts over recorded series that the backfill did not write: no alert
    would fire, and that would read as no false alarms."""
    span = int(end - start)
    answer = httpx.get(url + "/api/v1/query", params={"query": f"count_over_time({record}[{span}s])",
                                                      "time": repr(end)}, timeout=600).json()
    got = sum(float(r["value"][1]) for r in answer.get("data", {}).get("result", []))
    if got < 0.9 * span / step:
        raise BacktestError(f"The recording rules were backfilled for {got:.0f} of the {span / step:.0f} "
                            f"evaluations ({record}); see the Prometheus log in the backtest's work folder.")


def episodes_of(alert: str, times: Sequence[float], step: float, hold: float) -> list[Episode]:
    """Prometheus' `for`: a series is active from the first evaluation its expression returns
    it and fires at the first evaluation at least `hold` later while it still does; an
    evaluation without it ends the episode."""
    out: list[Episode] = []
    run_start = prev = None
    for t in [*sorted(set(times)), math.inf]:
        if prev is not None and t - prev > step * 1.5:
            assert run_start is not None
            fire = run_start + math.ceil(hold / step - 1e-9) * step
            if fire <= prev + 1e-6:
                out.append(Episode(alert, {}, run_start, fire, prev))
            run_start = None
        if run_start is None:
            run_start = t
        prev = t
    return out


def evaluate(files: Mapping[str, str], played: _Played, settings: Settings, workdir: Path,
             timings: dict[str, float], read: Mapping[str, str] | None = None,
             ) -> tuple[list[Episode], dict[str, list[tuple[float, float]]]]:
    """Steps 2 and 3 of the module docstring, in `workdir`: every alert's firing episodes;
    and the (seconds from the start, value) points of each model-level series in `read`."""
    prometheus, promtool = find_binary("prometheus"), find_binary("promtool")
    tsdb = workdir / "tsdb"
    tsdb.mkdir(parents=True, exist_ok=True)
    log = workdir / "prometheus.log"
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"evaluation_interval": settings.evaluation_interval,
                                                 "scrape_interval": settings.scrape_interval}}))
    began = time.perf_counter()
    chunks = played.scrapes.write(workdir)

    def backfill(path: Path) -> None:
        _promtool(promtool, "tsdb", "create-blocks-from", "openmetrics", str(path), str(tsdb),
                  what="backfill the simulated scrapes")
        path.unlink()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(backfill, chunks))
    timings["backfill scrapes"] = time.perf_counter() - began
    step = seconds(settings.evaluation_interval)
    start, end = EPOCH + step, EPOCH + played.phases[-1].end
    recording = [r for g in yaml.safe_load(files["recording.yml"])["groups"] for r in g["rules"]]
    began = time.perf_counter()
    for k, level in enumerate(_levels(recording)):
        halves = [half for half in (level[0::2], level[1::2]) if half]  # two promtools: one core each
        with _prometheus(prometheus, tsdb, config, free_port(), log) as url, ThreadPoolExecutor(2) as pool:
            outs = [pool.submit(_backfill_rules, promtool, url, half, workdir / f"level-{k + 1}-{i}", start, end,
                                settings.evaluation_interval) for i, half in enumerate(halves)]
            done = [future.result() for future in outs]
        for out in done:
            _move_blocks(out, tsdb)
    timings["backfill recording rules"] = time.perf_counter() - began
    began = time.perf_counter()
    found: list[Episode] = []
    alerting = [r for g in yaml.safe_load(files["alerts.yml"])["groups"] for r in g["rules"]]
    with _prometheus(prometheus, tsdb, config, free_port(), log) as url:
        _check_recorded(url, recording[0]["record"], start, end, step)
        for rule in alerting:
            hold = seconds(rule.get("for", "0s") or "0s")
            for labels, times in _query_range(url, rule["expr"], start, end, step).items():
                for e in episodes_of(rule["alert"], [t - EPOCH for t in times], step, hold):
                    found.append(Episode(e.alert, {**dict(labels), **rule.get("labels", {})}, e.active, e.fired,
                                         e.ended))
        series = {}
        for key, expr in (read or {}).items():
            points = [p for values in _range(url, expr, start, end, step).values() for p in values]
            series[key] = sorted((t - EPOCH, v) for t, v in points)
    timings["evaluate alerts"] = time.perf_counter() - began
    return sorted(found, key=lambda e: (e.fired, e.alert)), series


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
         player: Callable[[set[str]], _Played]) -> Result:
    files = rule_files(profile, settings)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    played = player(_rule_names(files))
    timings["play"] = time.perf_counter() - began
    n = Names.of(settings)
    read = {"estimated": n.estimated_accuracy, "realized": n.accuracy, "labels": n.labels_increase} \
        if profile.probabilities else {}
    with tempfile.TemporaryDirectory(prefix="modelmon-backtest-") as tmp:
        work = workdir or Path(tmp)
        episodes, quality = evaluate(files, played, settings, work, timings, read)
    return Result(name, settings.profile, played.phases[-1].end, played.phases, episodes, played.rows,
                  played.labels, timings, played.origin, quality, seconds(settings.quality_window))


def write_outputs(result: Result, settings: Settings, out: Path) -> list[Path]:
    """backtest.json and timeline.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    grace = grace_of(settings)
    summary = out / "backtest.json"
    summary.write_text(json.dumps(result.summary(grace), indent=2))
    picture = out / "timeline.png"
    _timeline(result, picture)
    return [summary, picture]


def _timeline(result: Result, path: Path) -> None:
    from modelmon.report.plotting import pyplot

    plt = pyplot()
    series = sorted({e.series for e in result.episodes})
    hours = result.span > 3 * 3600
    scale = 3600.0 if hours else 60.0
    quality = {k: v for k, v in result.quality.items() if k != "labels" and v}
    if quality:
        fig, (ax, lines) = plt.subplots(2, 1, sharex=True, figsize=(11, 3.6 + 0.45 * max(len(series), 1)),
                                        gridspec_kw={"height_ratios": [max(len(series), 1) + 1, 4]})
        for key, colour in (("estimated", "#1565c0"), ("realized", "#2e7d32")):
            points = np.array(quality.get(key, []))
            if points.size:
                lines.plot(points[:, 0] / scale, points[:, 1], lw=1.2, color=colour,
                           label=f"accuracy, {key}" + (" (calibrated probabilities)" if key == "estimated" else
                                                       " (labels)"))
        for phase in result.phases:
            lines.axvspan(phase.start / scale, phase.end / scale, color="#e8f5e9" if phase.healthy else "#ffebee",
                          lw=0)
        lines.set_ylim(0, 1.02)
        lines.legend(fontsize=8, loc="lower left")
        lines.set_xlabel("simulated hours" if hours else "simulated minutes")
    else:
        fig, ax = plt.subplots(figsize=(11, 1.2 + 0.45 * max(len(series), 1)))
    for phase in result.phases:
        ax.axvspan(phase.start / scale, phase.end / scale, color="#e8f5e9" if phase.healthy else "#ffebee", lw=0)
        ax.text(phase.start / scale, len(series) - 0.4, phase.name, fontsize=8, va="bottom")
    for row, name in enumerate(series):
        for e in (e for e in result.episodes if e.series == name):
            ax.plot([e.fired / scale, max(e.ended, e.fired + 1) / scale], [row, row], lw=6, color="#c62828",
                    solid_capstyle="butt")
    ax.set_yticks(range(len(series)), series, fontsize=8)
    ax.set_ylim(-0.6, len(series) + 0.2)
    ax.set_xlim(0, result.span / scale)
    if not quality:
        ax.set_xlabel("simulated hours" if hours else "simulated minutes")
    ax.set_title(f"backtest of '{result.scenario}' ({result.settings_profile} settings): alerts firing", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

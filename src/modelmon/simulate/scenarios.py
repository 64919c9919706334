"""Traffic scenarios as data: phases with a duration, a rate and per-feature distributions.

Built-in scenarios ship as YAML in `builtin_scenarios/`; users pass their own file. Any
numeric parameter can slide over its phase (`{from: 786, to: 450}`), so gradual drift is
just another distribution. A categorical input is `{categorical: {de: 0.5, fr: 0.3}}`, whose
shares can slide too; any input can be missing in a share of the rows (`missing: 0.1`, beside
its distribution). A scenario may also send ground truth (`feedback:`): for a share of the
answered requests, after a delay, the actual class (or, for a regressor, value) given by a
truth rule that a phase can change (concept drift: the same inputs, a different truth). A
phase marked `healthy: true` is traffic as it should be: `modelmon backtest` counts any alert
that fires in it as a false alarm.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from modelmon.errors import ModelmonError
from modelmon.settings import SettingsError, seconds


class ScenarioError(ModelmonError, ValueError):
    """A scenario that cannot be run; the message names the phase and feature at fault."""


_RATE = re.compile(r"^\s*([0-9.]+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(raw: Any, where: str) -> float:
    """Requests per second from `20`, `20/s` or `100/min`."""
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            pass
    if isinstance(raw, (int, float)) and 0 < raw < float("inf"):
        return float(raw)
    match = _RATE.match(str(raw))
    if not match or float(match.group(1)) <= 0:
        raise ScenarioError(f"{where}: rate {raw!r} is not a positive number per second, or like '100/min'.")
    return float(match.group(1)) / _PER[match.group(2)]


def _param(raw: Any, where: str) -> tuple[float, float]:
    """A parameter as (start, end) of its phase; equal when it does not slide."""
    if isinstance(raw, Mapping):
        if set(raw) != {"from", "to"}:
            raise ScenarioError(f"{where}: a sliding parameter takes exactly 'from' and 'to'.")
        return float(raw["from"]), float(raw["to"])
    try:
        return float(raw), float(raw)
    except (TypeError, ValueError):
        raise ScenarioError(f"{where}: {raw!r} is not a number.") from None


@dataclass(frozen=True)
class Distribution:
    kind: str  # normal | uniform | constant | mixture | categorical
    params: dict[str, tuple[float, float]] = field(default_factory=dict)  # categorical: share per category
    components: tuple[tuple[float, Distribution], ...] = ()
    missing: tuple[float, float] = (0.0, 0.0)  # share of rows with no value (None)
    categories: tuple[Any, ...] = ()  # categorical: the values, in the order of `params`

    _PARAMS: ClassVar[dict[str, tuple[str, ...]]] = {"normal": ("mean", "sd"), "uniform": ("low", "high"), "constant": ("value",)}

    @classmethod
    def parse(cls, raw: Any, where: str) -> Distribution:
        missing = (0.0, 0.0)
        if isinstance(raw, Mapping) and "missing" in raw:
            raw = dict(raw)
            missing = _param(raw.pop("missing"), f"{where}, missing")
            if not all(0 <= m <= 1 for m in missing):
                raise ScenarioError(f"{where}: missing is a share of the rows, between 0 and 1.")
        if not isinstance(raw, Mapping) or len(raw) != 1:
            raise ScenarioError(f"{where}: give one distribution, e.g. {{normal: {{mean: 0, sd: 1}}}} (and "
                                "optionally missing: share).")
        (kind, spec), = raw.items()
        if kind == "categorical":
            if not isinstance(spec, Mapping) or not spec:
                raise ScenarioError(f"{where}: categorical is {{value: share, ...}}, e.g. {{de: 0.5, fr: 0.5}}.")
            shares = {str(k): _param(v, f"{where}, share of {k!r}") for k, v in spec.items()}
            if any(a < 0 or b < 0 for a, b in shares.values()) or not any(a + b for a, b in shares.values()):
                raise ScenarioError(f"{where}: category shares are >= 0 and not all 0.")
            return cls("categorical", shares, missing=missing, categories=tuple(spec))
        if kind == "mixture":
            if not isinstance(spec, list) or not spec:
                raise ScenarioError(f"{where}: a mixture is a list of {{weight: w, <distribution>}}.")
            components = []
            for i, item in enumerate(spec):
                item = dict(item)
                weight = float(item.pop("weight", 1.0))
                components.append((weight, cls.parse(item, f"{where}, component {i}")))
            return cls("mixture", components=tuple(components), missing=missing)
        if kind not in cls._PARAMS:
            raise ScenarioError(f"{where}: unknown distribution {kind!r}; use normal, uniform, constant, mixture or "
                                "categorical.")
        names = cls._PARAMS[kind]
        if kind == "constant" and not isinstance(spec, Mapping):
            spec = {"value": spec}
        if not isinstance(spec, Mapping) or set(spec) != set(names):
            raise ScenarioError(f"{where}: {kind} takes {', '.join(names)}.")
        return cls(kind, {name: _param(spec[name], f"{where}, {name}") for name in names}, missing=missing)

    def scaled(self, factor: float) -> Distribution:
        """The distribution of `factor * X` (label delays under --speed)."""
        return Distribution(self.kind, {k: (a * factor, b * factor) for k, (a, b) in self.params.items()},
                            tuple((w, c.scaled(factor)) for w, c in self.components), self.missing)

    def sample(self, rng: np.random.Generator, progress: np.ndarray) -> np.ndarray:
        """One value per row; `progress` (0..1 through the phase) drives sliding parameters.
        Numbers for numeric kinds, objects for categories; None where a value is missing."""
        values = self._draw(rng, progress)
        start, end = self.missing
        if start or end:
            absent = rng.random(progress.size) < start + (end - start) * progress
            values = values.astype(object)
            values[absent] = None
        return values

    def _draw(self, rng: np.random.Generator, progress: np.ndarray) -> np.ndarray:
        def at(name: str) -> np.ndarray:
            start, end = self.params[name]
            return start + (end - start) * progress

        if self.kind == "normal":
            return rng.normal(at("mean"), np.maximum(at("sd"), 0.0))
        if self.kind == "uniform":
            return rng.uniform(at("low"), at("high"))
        if self.kind == "constant":
            return at("value").astype(float)
        if self.kind == "categorical":
            weights = np.column_stack([at(str(c)) for c in self.categories])
            cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
            index = (rng.random(progress.size)[:, None] > cumulative).sum(axis=1)
            out = np.empty(progress.size, dtype=object)
            out[:] = [self.categories[min(i, len(self.categories) - 1)] for i in index]
            return out
        weights = np.array([w for w, _ in self.components], dtype=float)
        choice = rng.choice(len(self.components), size=progress.size, p=weights / weights.sum())
        out = np.empty(progress.size)
        for i, (_, component) in enumerate(self.components):
            mask = choice == i
            out[mask] = component.sample(rng, progress[mask])
        return out


@dataclass(frozen=True)
class TruthRule:
    """The truth: a score sum(weight * term) + intercept + N(0, noise), where a term is a
    numeric input or an indicator `feature=value` (1 where a categorical input has that value,
    0 elsewhere; missing values count 0). With a threshold it is a class: `positive` when the
    score is over it, else `negative`; without, the score itself (a regressor's target)."""

    weights: dict[str, float]
    threshold: float | None
    noise: float = 0.0
    positive: Any = 1
    negative: Any = 0
    intercept: float = 0.0

    @classmethod
    def parse(cls, raw: Any, where: str) -> TruthRule:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("linear"), Mapping):
            raise ScenarioError(f"{where}: a truth rule is {{linear: {{feature: weight}}, threshold: t, noise: sd}} "
                                "(a class), or without threshold (a value).")
        unknown = sorted(set(raw) - {"linear", "threshold", "noise", "positive", "negative", "intercept"})
        if unknown:
            raise ScenarioError(f"{where}: unknown truth rule key {unknown[0]!r}.")
        try:
            weights = {str(k): float(v) for k, v in raw["linear"].items()}
            threshold = float(raw["threshold"]) if "threshold" in raw else None
            noise, intercept = float(raw.get("noise", 0.0)), float(raw.get("intercept", 0.0))
        except (TypeError, ValueError):
            raise ScenarioError(f"{where}: truth rule weights, threshold, intercept and noise are numbers.") from None
        if not weights or noise < 0:
            raise ScenarioError(f"{where}: a truth rule needs at least one weight and a noise >= 0.")
        return cls(weights, threshold, noise, raw.get("positive", 1), raw.get("negative", 0), intercept)

    @property
    def features(self) -> set[str]:
        return {term.split("=", 1)[0] for term in self.weights}

    def actual(self, columns: Mapping[str, np.ndarray], rng: np.random.Generator) -> list[Any]:
        rows = len(next(iter(columns.values())))
        score = np.full(rows, self.intercept)
        for term, w in self.weights.items():
            feature, _, value = term.partition("=")
            column = columns[feature]
            if value:
                score = score + w * np.array([str(v) == value for v in column], dtype=float)
            else:
                score = score + w * np.array([0.0 if v is None else float(v) for v in column])
        if self.noise:
            score = score + rng.normal(0.0, self.noise, rows)
        if self.threshold is None:
            return [float(s) for s in score]
        return [self.positive if s > self.threshold else self.negative for s in score]


@dataclass(frozen=True)
class Feedback:
    """Ground truth for `share` of the answered requests, `delay` seconds after the answer."""

    share: float
    delay: Distribution
    truth: TruthRule

    @classmethod
    def parse(cls, raw: Any, where: str, base: Feedback | None = None) -> Feedback | None:
        if raw is None:
            return base
        if not isinstance(raw, Mapping):
            raise ScenarioError(f"{where}: feedback is {{share: 0.5, delay: <distribution>, truth: <rule>}}.")
        unknown = sorted(set(raw) - {"share", "delay", "truth"})
        if unknown:
            raise ScenarioError(f"{where}: unknown feedback key {unknown[0]!r}; use share, delay and truth.")
        try:
            share = float(raw.get("share", base.share if base else 1.0))
        except (TypeError, ValueError):
            raise ScenarioError(f"{where}: feedback share must be a number.") from None
        if not 0 <= share <= 1:
            raise ScenarioError(f"{where}: feedback share must be between 0 and 1.")
        delay = Distribution.parse(raw["delay"], f"{where}, feedback delay") if "delay" in raw else (
            base.delay if base else Distribution("constant", {"value": (0.0, 0.0)}))
        if "truth" in raw:
            truth = TruthRule.parse(raw["truth"], f"{where}, feedback truth")
        elif base is not None:
            truth = base.truth
        else:
            raise ScenarioError(f"{where}: feedback needs a truth rule.")
        return cls(share, delay, truth)


@dataclass(frozen=True)
class Phase:
    name: str
    duration: float  # seconds
    rate: float  # requests per second
    features: dict[str, Distribution]
    invalid_share: float = 0.0
    feedback: Feedback | None = None
    healthy: bool = False  # traffic as it should be: where `modelmon backtest` counts false alarms

    @property
    def requests(self) -> int:
        return max(1, round(self.duration * self.rate))


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    phases: tuple[Phase, ...]

    @property
    def features(self) -> set[str]:
        return set().union(*(p.features for p in self.phases))

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.phases)

    def faster(self, speed: float) -> Scenario:
        """The same requests, `speed` times faster: durations shrink, rates grow."""
        if speed <= 0:
            raise ScenarioError("--speed must be positive.")
        phases = tuple(dataclasses.replace(
            p, duration=p.duration / speed, rate=p.rate * speed,
            feedback=dataclasses.replace(p.feedback, delay=p.feedback.delay.scaled(1 / speed)) if p.feedback else None,
        ) for p in self.phases)
        return Scenario(self.name, self.description, phases)

    def at_rate(self, rate: float) -> Scenario:
        """Every phase at `rate` requests per second."""
        return Scenario(self.name, self.description, tuple(dataclasses.replace(p, rate=rate) for p in self.phases))

    def lasting(self, total: float) -> Scenario:
        """Every phase stretched or shrunk in proportion so the whole lasts `total` seconds."""
        factor = total / self.duration
        phases = tuple(dataclasses.replace(p, duration=p.duration * factor) for p in self.phases)
        return Scenario(self.name, self.description, phases)

    def check_features(self, served: Sequence[str]) -> None:
        """Refuse a scenario that does not send exactly the served model's inputs."""
        for phase in self.phases:
            missing = sorted(set(served) - set(phase.features))
            unknown = sorted(set(phase.features) - set(served))
            if phase.feedback is not None:
                unknown = sorted(set(unknown) | (phase.feedback.truth.features - set(served)))
            if missing or unknown:
                parts = []
                if missing:
                    parts.append(f"lacks {', '.join(missing)}")
                if unknown:
                    parts.append(f"has {', '.join(unknown)} which the model does not take")
                raise ScenarioError(
                    f"Scenario {self.name!r} does not fit the served model: phase {phase.name!r} "
                    f"{' and '.join(parts)} (the model's inputs: {', '.join(served)})."
                )


def parse_scenario(raw: Any, source: str) -> Scenario:
    if not isinstance(raw, Mapping) or not raw.get("phases"):
        raise ScenarioError(f"{source}: a scenario needs a name and a list of phases.")
    name = str(raw.get("name") or Path(source).stem)
    default_rate = raw.get("rate", 10)
    feedback = Feedback.parse(raw.get("feedback"), source)
    phases = []
    for i, spec in enumerate(raw["phases"]):
        where = f"{source}, phase {i + 1}"
        if not isinstance(spec, Mapping) or not spec.get("features"):
            raise ScenarioError(f"{where}: a phase needs a duration and features.")
        try:
            duration = seconds(str(spec.get("duration", "")))
        except SettingsError as exc:
            raise ScenarioError(f"{where}: {exc}") from None
        share = float(spec.get("invalid_share", 0.0))
        if not 0 <= share <= 1:
            raise ScenarioError(f"{where}: invalid_share must be between 0 and 1.")
        healthy = spec.get("healthy", False)
        if not isinstance(healthy, bool):
            raise ScenarioError(f"{where}: healthy is true or false (true: traffic as it should be, where a "
                                "backtest counts any alert as a false alarm).")
        features = {
            str(feature): Distribution.parse(dist, f"{where}, feature {feature!r}")
            for feature, dist in spec["features"].items()
        }
        phases.append(Phase(
            name=str(spec.get("name") or f"phase {i + 1}"),
            duration=duration,
            rate=parse_rate(spec.get("rate", default_rate), where),
            features=features,
            invalid_share=share,
            feedback=Feedback.parse(spec.get("feedback"), where, feedback),
            healthy=healthy,
        ))
    return Scenario(name, str(raw.get("description", "")).strip(), tuple(phases))


def builtin_scenarios() -> list[str]:
    folder = resources.files("modelmon.simulate") / "builtin_scenarios"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ScenarioError(f"No scenario file at {path}.") from None
        source = str(path)
    else:
        resource = resources.files("modelmon.simulate") / "builtin_scenarios" / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ScenarioError(
                f"No built-in scenario {str(name_or_path)!r}; choose one of {', '.join(builtin_scenarios())} "
                "or pass a YAML file."
            )
        text = resource.read_text()
        source = f"{name_or_path}.yaml"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source} is not valid YAML ({exc}).") from None
    return parse_scenario(raw, source)

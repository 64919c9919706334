"""What a backtest found: the episodes each alert fired, per phase, with detection delay and
false alarms; its JSON, table and timeline outputs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The simulated clock starts here (a fixed instant, so runs are reproducible to the sample).
from modelmon.backtest.recorder import clock_at
from modelmon.errors import ModelmonError
from modelmon.settings import Settings, seconds


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
            lines.append(f"  {e.series:<42} fired at {clock_at(e.fired)}, held until {clock_at(e.ended)}")
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


def grace_of(settings: Settings) -> float:
    """How long after a change back to healthy traffic a firing is still the change's: the
    longest window plus `for`."""
    return max(seconds(settings.rate_window), seconds(settings.drift_window)) + seconds(settings.alert_for)


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

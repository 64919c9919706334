"""`modelmon report`: the dashboard's panels, drawn from a real Prometheus into files.

The panels and their queries are read from the generated Grafana dashboard (the one
definition), never restated here. Output: one PNG per panel, `report.json` with every point
drawn, and a self-contained `report.html` with the alerts that fired in the window.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from modelmon.errors import ModelmonError
from modelmon.model.reference import ReferenceProfile
from modelmon.report.plotting import pyplot
from modelmon.rules.files import group_names
from modelmon.rules.series import Names
from modelmon.settings import Settings, read_settings_file
from modelmon.targets.dashboards import board_panels
from modelmon.targets.layout import layout_of
from modelmon.targets.promapi import PrometheusAPI, PrometheusAPIError


class ReportError(ModelmonError):
    """Prometheus could not be read; the message says what to do."""


@dataclass
class Series:
    legend: str
    points: list[tuple[float, float]]  # (epoch seconds, value)


@dataclass
class PanelData:
    row: str
    title: str
    kind: str
    unit: str
    threshold: float | None
    instant: bool
    series: list[Series] = field(default_factory=list)
    image: str = ""

    @property
    def points(self) -> int:
        return sum(len(s.points) for s in self.series)


@dataclass(frozen=True)
class AlertEpisode:
    alert: str
    labels: str
    start: float
    end: float
    ongoing: bool


@dataclass(frozen=True)
class PhaseMark:
    name: str
    at: float


def _legend(template: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    return text or ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"


_T = TypeVar("_T")


class _Prometheus:
    """The shared API client, its errors said as the report's: what to pass to reach Prometheus."""

    def __init__(self, url: str) -> None:
        self.api = PrometheusAPI(url, timeout=30)

    def _asked(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except PrometheusAPIError as exc:
            if exc.refused:
                raise ReportError(f"Prometheus refused a query: {exc}") from None
            raise ReportError(f"Could not query Prometheus at {self.api.url} ({exc.cause}); "
                              "is it running? Pass --prometheus URL.") from None

    def rule_groups(self) -> list[dict[str, Any]]:
        return self._asked(lambda: self.api.rule_groups("record"))

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._asked(lambda: self.api.query_range(expr, start, end, step))

    def instant(self, expr: str, at: float) -> list[dict[str, Any]]:
        return self._asked(lambda: self.api.query(expr, at))


def collect(prometheus: str, board: dict[str, Any], model: str, start: float, end: float) -> list[PanelData]:
    """Query every panel of the board over [start, end]."""
    client = _Prometheus(prometheus)
    step = max(1.0, round((end - start) / 300))
    panels = []
    for panel in board_panels(board, model):
        data = PanelData(panel.row, panel.title, panel.kind, panel.unit, panel.threshold,
                         instant=all(q.instant for q in panel.queries))
        for query in panel.queries:
            if query.instant:
                for item in client.instant(query.expr, end):
                    data.series.append(Series(_legend(query.legend, item["metric"]),
                                              [(float(item["value"][0]), float(item["value"][1]))]))
            else:
                for item in client.range(query.expr, start, end, step):
                    points = [(float(t), float(v)) for t, v in item["values"]]
                    data.series.append(Series(_legend(query.legend, item["metric"]), points))
        panels.append(data)
    return panels


def alert_episodes(prometheus: str, model: str, start: float, end: float) -> list[AlertEpisode]:
    """Each stretch of time an alert of this model was firing within [start, end]."""
    client = _Prometheus(prometheus)
    step = 1.0 if end - start <= 3600 else round((end - start) / 3600)
    episodes = []
    for item in client.range(f'ALERTS{{model="{model}", alertstate="firing"}}', start, end, step):
        labels = item["metric"]
        detail = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())
                           if k not in ("__name__", "alertname", "alertstate", "model", "severity"))
        times = [float(t) for t, _ in item["values"]]
        first = previous = times[0]
        for t in [*times[1:], None]:
            if t is None or t - previous > 2.5 * step:
                episodes.append(AlertEpisode(labels["alertname"], detail, first, previous,
                                             ongoing=t is None and end - previous <= 2.5 * step))
                if t is not None:
                    first = t
            if t is not None:
                previous = t
    return sorted(episodes, key=lambda e: e.start)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def draw_panel(panel: PanelData, out: Path, phases: list[PhaseMark], start: float, end: float,
               episodes: list[AlertEpisode] | None = None) -> Path:
    """One PNG: a time series, a bar chart for instant panels, a table for the alert panel."""
    from matplotlib import dates as mdates

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    ax.set_title(panel.title, loc="left", fontsize=11)
    percent = panel.unit == "percentunit"
    if panel.kind == "table":
        rows = [[e.alert, e.labels, time.strftime("%H:%M:%S", time.gmtime(e.start)),
                 "firing" if e.ongoing else time.strftime("%H:%M:%S", time.gmtime(e.end))] for e in episodes or []]
        ax.axis("off")
        if rows:
            table = ax.table(cellText=rows, colLabels=["alert", "labels", "start (UTC)", "end (UTC)"],
                             loc="upper center", cellLoc="left")
            table.auto_set_font_size(False)
            table.set_fontsize(8)
        else:
            ax.text(0.5, 0.5, "no alert fired in this window", ha="center", va="center", fontsize=12, color="#666")
    elif panel.points == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", fontsize=16, color="#999", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    elif panel.instant:
        _draw_bars(ax, panel, percent)
    else:
        for s in panel.series:
            xs = [mdates.date2num(_utc(t)) for t, _ in s.points]
            ys = [v * (100 if percent else 1) for _, v in s.points]
            ax.plot(xs, ys, label=s.legend, linewidth=1.6)
        if panel.threshold is not None:
            ax.axhline(panel.threshold * (100 if percent else 1), color="#C44E52", linestyle="--", linewidth=1.2,
                       label=f"threshold {panel.threshold:g}")
        for mark in phases:
            if start <= mark.at <= end:
                x = mdates.date2num(_utc(mark.at))
                ax.axvline(x, color="#555", linestyle=":", linewidth=1)
                ax.text(x, 1.0, f" {mark.name}", transform=ax.get_xaxis_transform(), fontsize=8, va="top", color="#333")
        ax.set_xlim(mdates.date2num(_utc(start)), mdates.date2num(_utc(end)))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.set_ylabel(_axis_label(panel.unit))
        if len(panel.series) <= 10:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


_BUCKET_LEGEND = re.compile(r"^(.*?)\s*<=\s*(\S+)$")


def _axis_label(unit: str) -> str:
    return {"percentunit": "%", "reqps": "requests/s", "s": "seconds", "short": ""}.get(unit, unit)


def _draw_bars(ax: Any, panel: PanelData, percent: bool) -> None:
    """Instant panels: grouped bars per bucket bound (`name <= le` legends), else one bar each."""
    scale = 100 if percent else 1
    parsed = [_BUCKET_LEGEND.match(s.legend) for s in panel.series]
    if all(parsed):
        groups: dict[str, dict[float, float]] = {}
        for match, s in zip(parsed, panel.series):
            name, le = match.group(1) or "share", match.group(2)  # type: ignore[union-attr]
            bound = float("inf") if le == "+Inf" else float(le)
            groups.setdefault(name, {})[bound] = s.points[-1][1] * scale
        bounds = sorted({b for g in groups.values() for b in g if b != float("inf")})
        width = 0.8 / len(groups)
        for i, (name, values) in enumerate(sorted(groups.items())):
            xs = [j + i * width for j in range(len(bounds))]
            ax.bar(xs, [values.get(b, 0.0) for b in bounds], width=width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(bounds))], [f"<= {b:g}" for b in bounds],
                      fontsize=7, rotation=30)
        ax.legend(fontsize=8)
    else:
        ax.barh([s.legend for s in panel.series], [s.points[-1][1] * scale for s in panel.series])
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("cumulative %" if percent else _axis_label(panel.unit))
    ax.grid(alpha=0.3, axis="y")


def _utc(epoch: float) -> datetime:

    return datetime.fromtimestamp(epoch, tz=UTC)


def write_report(prometheus: str, board: dict[str, Any], model: str, out: Path, since: float,
                 phases: list[PhaseMark] | None = None, end: float | None = None) -> Path:
    """Query, draw and write report.html, report.json and one PNG per panel; returns the HTML path."""
    end = end or time.time()
    start = end - since
    phases = phases or []
    panels = collect(prometheus, board, model, start, end)
    episodes = alert_episodes(prometheus, model, start, end)
    (out / "panels").mkdir(parents=True, exist_ok=True)
    for panel in panels:
        path = draw_panel(panel, out / "panels" / f"{_slug(panel.title)}.png", phases, start, end, episodes)
        panel.image = str(path.relative_to(out))
    (out / "report.json").write_text(json.dumps({
        "model": model, "prometheus": prometheus, "start": start, "end": end,
        "phases": [asdict(p) for p in phases],
        "alerts": [asdict(e) for e in episodes],
        "panels": [asdict(p) for p in panels],
    }, indent=1))
    page = out / "report.html"
    page.write_text(_html(model, panels, episodes, phases, start, end, out))
    return page


def _html(model: str, panels: list[PanelData], episodes: list[AlertEpisode], phases: list[PhaseMark],
          start: float, end: float, out: Path) -> str:
    def clock(t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>modelmon report: {html.escape(model)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1000px}img{max-width:100%}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "h2{margin-top:1.5em}</style></head><body>",
        f"<h1>modelmon report: {html.escape(model)}</h1>",
        f"<p>{clock(start)} to {clock(end)}</p>",
        "<h2>Alerts that fired</h2>",
    ]
    if episodes:
        parts.append("<table><tr><th>alert</th><th>labels</th><th>start</th><th>end</th></tr>")
        for e in episodes:
            parts.append(f"<tr><td>{html.escape(e.alert)}</td><td>{html.escape(e.labels)}</td>"
                         f"<td>{clock(e.start)}</td><td>{'still firing' if e.ongoing else clock(e.end)}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No alert fired in this window.</p>")
    if phases:
        parts.append("<h2>Scenario phases</h2><ul>")
        parts += [f"<li>{clock(p.at)}: {html.escape(p.name)}</li>" for p in phases]
        parts.append("</ul>")
    row = None
    for panel in panels:
        if panel.row != row:
            parts.append(f"<h2>{html.escape(panel.row)}</h2>")
            row = panel.row
        data = base64.b64encode((out / panel.image).read_bytes()).decode()
        parts.append(f"<h3>{html.escape(panel.title)}</h3><img alt='{html.escape(panel.title)}' "
                     f"src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def board_for(dashboard: Path) -> dict[str, Any]:
    try:
        board: dict[str, Any] = json.loads(dashboard.read_text())
        return board
    except FileNotFoundError:
        raise ReportError(f"No dashboard definition at {dashboard}: run `modelmon stack render` or pass "
                          "--dashboard FILE.") from None


def stack_settings(prometheus: str, settings: Settings, stack: Path | None, profile: ReferenceProfile) -> Settings:
    """The settings of the stack a report reads: its folder's, when given; else `settings`
    with the windows of the recording rules that its Prometheus runs for this model."""
    if stack is not None:
        return read_settings_file(layout_of(profile, stack).settings)
    recording_group = group_names(profile)[0]
    groups = _Prometheus(prometheus).rule_groups()
    names = [rule["name"] for group in groups if group["name"] == recording_group for rule in group["rules"]]
    windows = Names.windows_of(names)
    if len(windows) < 3:
        raise ReportError(f"Prometheus at {prometheus} runs no modelmon recording rules for model {profile.model!r} "
                          f"(group {recording_group}); point --prometheus at the stack's Prometheus, or pass --stack "
                          "DIR.")
    return settings.replace(**windows)

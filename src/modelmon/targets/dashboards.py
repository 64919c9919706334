"""The model overview dashboard, built with Grafana's own grafana-foundation-sdk.

Panels read the recorded series of `rules.Names` where one exists, so the dashboard shows
exactly what the alerts evaluate. Queries use the `$model` and `$instance` variables;
`panel_queries` turns them into plain PromQL so tests (and the report) can run them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, table, timeseries
from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

from modelmon.contract import names as N
from modelmon.model.reference import ReferenceProfile
from modelmon.rules.alerts import dashboard_uid
from modelmon.settings import Settings
from modelmon.targets.panels import PanelSpec, Query, panel_specs

DATASOURCE_UID = "modelmon-prometheus"


_DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")


def _thresholds(value: float | None) -> dashboard.ThresholdsConfig:
    steps = [Threshold(value=None, color="green")]
    if value is not None:
        steps.append(Threshold(value=value, color="red"))
    return dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)


def _target(query: Query, ref: str) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref).datasource(_DATASOURCE)
    return target.instant() if query.instant else target.range()


def _panel(spec: PanelSpec) -> Any:
    builder: Any
    if spec.kind == "timeseries":
        builder = timeseries.Panel().line_width(2).fill_opacity(10)
        if spec.threshold is not None:
            builder = builder.thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE))
    elif spec.kind == "bargauge":
        builder = bargauge.Panel()
    else:
        builder = table.Panel()
    builder = builder.title(spec.title).unit(spec.unit).datasource(_DATASOURCE).height(8).span(12)
    builder = builder.thresholds(_thresholds(spec.threshold))
    if spec.description:
        builder = builder.description(spec.description)
    if spec.minimum is not None:
        builder = builder.min(spec.minimum)
    if spec.maximum is not None:
        builder = builder.max(spec.maximum)
    for i, query in enumerate(spec.queries):
        builder = builder.with_target(_target(query, chr(ord("A") + i)))
    return builder


def build_dashboard(profile: ReferenceProfile, settings: Settings) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (schemaVersion of the pinned SDK: Grafana 11.6)."""
    board = (
        dashboard.Dashboard(f"modelmon: {profile.model}")
        .uid(dashboard_uid(profile))
        .tags(["modelmon", "generated"])
        .refresh(settings.scrape_interval if settings.profile == "demo" else "30s")
        .time("now-30m" if settings.profile == "production" else "now-15m", "now")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            dashboard.QueryVariable("model").label("Model").datasource(_DATASOURCE)
            .query(f"label_values({N.MODEL_INFO.name}, model)").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
        .with_variable(
            dashboard.QueryVariable("instance").label("Instance").datasource(_DATASOURCE)
            .query(f'label_values({N.MODEL_INFO.name}{{model="$model"}}, instance)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).multi(True).include_all(True).all_value(".*")
        )
    )
    current_row = None
    ids = iter(range(1, 1000))  # Grafana links and edits panels by id: unique and stable
    for spec in panel_specs(profile, settings):
        if spec.row != current_row:
            board = board.with_row(dashboard.Row(spec.row).id(next(ids)))
            current_row = spec.row
        board = board.with_panel(_panel(spec).id(next(ids)))
    built: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(board.build()))
    return built


def dashboard_json(profile: ReferenceProfile, settings: Settings) -> str:
    return json.dumps(build_dashboard(profile, settings), indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class BoardPanel:
    """A panel read back from dashboard JSON: what the report needs to redraw it."""

    row: str
    title: str
    kind: str
    unit: str
    threshold: float | None
    queries: tuple[Query, ...]


def _fill(expr: str, model: str) -> str:
    return expr.replace("$model", model).replace("$instance", ".*")


def board_panels(board: dict[str, Any], model: str) -> list[BoardPanel]:
    """Every panel of a dashboard JSON with runnable PromQL (variables filled in)."""
    panels = []
    row = ""
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            row = panel.get("title", "")
            continue
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        steps = defaults.get("thresholds", {}).get("steps", [])
        threshold = next((st["value"] for st in reversed(steps) if st.get("value") is not None), None)
        queries = tuple(
            Query(_fill(t["expr"], model), t.get("legendFormat", ""), bool(t.get("instant")))
            for t in panel.get("targets", []) or []
        )
        panels.append(BoardPanel(row, panel["title"], panel["type"], defaults.get("unit", "short"), threshold, queries))
    return panels


def panel_queries(board: dict[str, Any], model: str) -> Iterator[tuple[str, str]]:
    """(panel title, runnable PromQL) for every target of a dashboard JSON."""
    for panel in board_panels(board, model):
        for query in panel.queries:
            yield panel.title, query.expr

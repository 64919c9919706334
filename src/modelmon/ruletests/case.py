"""One promtool test case: the synthetic series it feeds, the values it expects the recording
rules to hold, and the alerts it expects at each evaluation time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from modelmon.rules.alerts import Alert
from modelmon.rules.series import JOB
from modelmon.settings import Settings

INSTANCES = ("replica-a:8000", "replica-b:8000")
REPLICAS = len(INSTANCES)  # every case's series come from both: what a case expects is summed over them


TOLERANCE = 1e-6


def _labels(**labels: str) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _render(template: str, labels: Mapping[str, str], value: float) -> str:
    """What Prometheus renders for the template forms alerts use (see rules.Alert)."""

    def replace(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("$labels."):
            return labels[expr.removeprefix("$labels.")]
        if expr == "$value | humanizePercentage":
            return f"{value * 100:.4g}%"
        if expr == '$value | printf "%.3f"':
            return f"{value:.3f}"
        raise ValueError(f"unsupported template form {{{{ {expr} }}}}")

    return re.sub(r"\{\{(.*?)\}\}", replace, template)


def duration_text(interval: float) -> str:
    return f"{int(interval)}s" if interval >= 1 else f"{int(interval * 1000)}ms"


class Case:
    """One promtool test group: series from two replicas, expressions and alerts to check."""

    def __init__(self, name: str, settings: Settings, steps: int, interval: float) -> None:
        self.name = name
        self.settings = settings
        self.interval = interval
        self.steps = steps
        self.series: list[dict[str, str]] = []
        self.rates: list[float | None] = []  # each series' growth per step (None: a gauge)
        self.exprs: list[dict[str, Any]] = []
        self.alert_tests: list[dict[str, Any]] = []

    def counter(self, metric: str, per_step: float, instances: Sequence[str] = INSTANCES, **labels: str) -> None:
        """A counter growing by `per_step` every scrape, on each replica."""
        for instance in instances:
            self.series.append({
                "series": metric + _labels(job=JOB, instance=instance, **labels),
                "values": f"0+{float(per_step)!r}x{self.steps}",
            })
            self.rates.append(float(per_step))

    def changing_to(self, after: Case, step: int) -> None:
        """From `step` on, each counter grows as in `after` (the same series, other rates)."""
        later = {series["series"]: rate for series, rate in zip(after.series, after.rates, strict=True)}
        assert set(later) == {series["series"] for series in self.series}, "the same series before and after"
        for series, a in zip(self.series, self.rates, strict=True):
            b = later[series["series"]]
            if a is not None and b is not None:
                # promtool adds `a` step by step; starting the second run a hair above a * step
                # keeps a rounding error from reading as a counter reset (which rate() would
                # count as a whole new counter).
                start = a * step * (1 + 1e-12) + b
                series["values"] = f"0+{a!r}x{step} {start!r}+{b!r}x{self.steps - step - 1}"

    def gauge(self, metric: str, value: float, instances: Sequence[str] = INSTANCES, **labels: str) -> None:
        for instance in instances:
            self.series.append({
                "series": metric + _labels(job=JOB, instance=instance, **labels),
                "values": f"{float(value)!r}+0x{self.steps}",
            })
            self.rates.append(None)

    def expect(self, expr: str, at: float, labels: Mapping[str, str], value: float) -> None:
        """`expr` at `at` seconds equals `value` within TOLERANCE (checked inside Prometheus)."""
        if not math.isfinite(value):
            raise ValueError(f"{expr}: expected value {value} is not finite")
        self.exprs.append({
            "expr": f"abs({expr}{_labels(**labels)} - {float(value)!r}) < bool {TOLERANCE}",
            "eval_time": f"{int(at)}s",
            "exp_samples": [{"labels": _labels(**labels), "value": 1}],
        })

    def alert(self, alert: Alert, at: float, firing: Sequence[tuple[Mapping[str, str], float]], url: str) -> None:
        expected = []
        for labels, value in firing:
            all_labels = {**labels, **alert.labels, "severity": alert.severity}
            expected.append({
                "exp_labels": all_labels,
                "exp_annotations": {
                    "summary": _render(alert.summary, all_labels, value),
                    "description": _render(alert.description, all_labels, value),
                    "dashboard": url,
                },
            })
        self.alert_tests.append({"eval_time": f"{int(at)}s", "alertname": alert.name, "exp_alerts": expected})

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "interval": duration_text(self.interval),
            "input_series": self.series,
            "promql_expr_test": self.exprs,
            "alert_rule_test": self.alert_tests,
        }

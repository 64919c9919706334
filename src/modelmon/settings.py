"""One settings object for the whole stack: windows, thresholds, ports, secrets' locations.

Two profiles: `production` (the workshop's 5 s scrape, 5 m rates, 10 m drift, 2 m `for`) and
`demo` (1 s scrape and windows short enough that the demo fits in about three minutes).
A YAML file and `MODELMON_*` environment variables override any field.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("production", "demo")
ENV_PREFIX = "MODELMON_"


class SettingsError(ValueError):
    """A settings file or variable that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    profile: str = "production"
    # Prometheus
    scrape_interval: str = "5s"
    evaluation_interval: str = "5s"
    rate_window: str = "5m"
    drift_window: str = "10m"
    quality_window: str = "1h"  # labels arrive late and for part of the traffic: a longer window
    alert_for: str = "2m"
    down_for: str = "1m"
    # Thresholds (the workshop's alert: success rate of stores under 20 %)
    positive_rate_floor: float = 0.20
    psi_threshold: float = 0.2
    ks_threshold: float = 0.2
    prediction_psi_threshold: float = 0.2
    invalid_ratio_threshold: float = 0.05
    error_ratio_threshold: float = 0.01
    latency_p99_seconds: float = 0.5
    accuracy_floor: float = 0.8  # ModelQualityDrop: accuracy on the labels received in the quality window
    # Traffic guards: below these counts a window's statistic is mostly sampling noise.
    min_samples: int = 200  # predictions (or requests) in the rate window, for ratio alerts
    min_drift_samples: int = 500  # values in the drift window: PSI noise ~ 9/N over ten bins
    min_labels: int = 100  # labels in the quality window: accuracy's sd at 0.8 is 4 points on 100
    # Alertmanager
    group_wait: str = "10s"
    group_interval: str = "1m"
    repeat_interval: str = "4h"
    slack_channel: str = "#model-alerts"
    slack_webhook_file: str = "secrets/slack_webhook_url"  # relative to alertmanager.yml
    # Where things listen (native mode binds them all to `host`)
    host: str = "127.0.0.1"
    app_port: int = 8000
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    receiver_port: int = 9099
    grafana_port: int = 3000
    grafana_url: str = "http://localhost:3000"
    # Grafana login: only the demo profile has a default (the workshop's), never production.
    grafana_admin_user: str = "admin"
    grafana_admin_password: str = ""

    @property
    def demo_credentials(self) -> bool:
        return self.profile == "demo" and self.grafana_admin_password == "mlreply"

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


_DEMO = {
    "profile": "demo",
    "scrape_interval": "1s",
    "evaluation_interval": "1s",
    "rate_window": "30s",
    "drift_window": "1m",
    "quality_window": "1m",
    "alert_for": "10s",
    "down_for": "5s",
    "group_wait": "1s",
    "group_interval": "5s",
    "repeat_interval": "1h",
    "grafana_admin_user": "mlreply",
    "grafana_admin_password": "mlreply",
}

_DURATION_FIELDS = frozenset({
    "scrape_interval", "evaluation_interval", "rate_window", "drift_window", "quality_window", "alert_for", "down_for",
    "group_wait", "group_interval", "repeat_interval",
})
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> float:
    """Prometheus duration (one unit, e.g. `30s`, `5m`) in seconds."""
    match = _DURATION.match(duration)
    if not match:
        raise SettingsError(f"{duration!r} is not a duration like 30s, 5m or 1h.")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _coerce(name: str, raw: Any, field: dataclasses.Field) -> Any:
    kind = field.type if isinstance(field.type, type) else {"str": str, "int": int, "float": float}[field.type]
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"Setting {name} must be a {kind.__name__}, got {raw!r}.") from None
    if name in _DURATION_FIELDS:
        seconds(value)
    return value


def load_settings(
    profile: str = "production",
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Profile defaults, then the file, then MODELMON_* variables (the last word wins)."""
    if profile not in PROFILES:
        raise SettingsError(f"Unknown settings profile {profile!r}; choose one of {', '.join(PROFILES)}.")
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = dict(_DEMO) if profile == "demo" else {}
    overrides: dict[str, Any] = {}
    if file is not None:
        try:
            overrides.update(yaml.safe_load(file.read_text()) or {})
        except FileNotFoundError:
            raise SettingsError(f"No settings file at {file}.") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"Settings file {file} is not valid YAML ({exc}).") from None
    env = os.environ if env is None else env
    for name in fields:
        if ENV_PREFIX + name.upper() in env:
            overrides[name] = env[ENV_PREFIX + name.upper()]
    for name, raw in overrides.items():
        if name not in fields or name == "profile":
            raise SettingsError(f"Unknown setting {name!r}; known settings: {', '.join(sorted(fields))}.")
        values[name] = _coerce(name, raw, fields[name])
    return Settings(**values)

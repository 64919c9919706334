"""One settings object for everything modelmon runs: the server, its prediction log, the
Prometheus windows and thresholds, Alertmanager, ports and where secrets are read from.

Each field is declared once below, with its default, its `demo` default where the demo needs
another, its valid range and one line saying what it is; the README's settings table is made
from these declarations. Values are read in this order, the last word winning: the settings
profile (`production` or `demo`), a YAML file, `MODELMON_<FIELD>` environment variables,
command-line flags.
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

from modelmon.errors import ModelmonError

PROFILES = ("production", "demo")
RULE_EVALUATIONS = ("global", "cluster")
ENV_PREFIX = "MODELMON_"
# prometheus_client's own variable: where the workers of `serve --workers N` keep their metrics.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class SettingsError(ModelmonError, ValueError):
    """A settings file or variable that cannot be used; the message says which and why."""


def _setting(default: Any, doc: str, *, demo: Any = None, low: float | None = None, high: float | None = None,
             duration: bool = False, choices: tuple[str, ...] | None = None) -> Any:
    """A field with its documentation: `low`/`high` bound numbers (inclusive), `duration`
    marks a Prometheus duration (`30s`, `5m`), which must be positive unless `low` is 0;
    `choices`, the values a text setting may take."""
    return dataclasses.field(default=default, metadata={
        "doc": doc, "demo": demo, "low": low, "high": high, "duration": duration, "choices": choices})


@dataclass(frozen=True)
class Settings:
    profile: str = _setting("production", "settings profile: `production` or `demo`")
    # The model server
    host: str = _setting("127.0.0.1", "address every native part binds to")
    app_port: int = _setting(8000, "the app's port", low=1, high=65535)
    metrics_port: int = _setting(0, "serve /metrics on this port only, not on the API port (0: on the API port)",
                                 low=0, high=65535)
    workers: int = _setting(1, "worker processes; above 1, metrics are summed across them", low=1, high=64)
    max_batch_rows: int = _setting(1000, "records per request at most (413 beyond)", low=1)
    max_body_bytes: int = _setting(1_048_576, "request body size limit in bytes (413 beyond)", low=1)
    batch_rows: int = _setting(256, "micro-batching: rows of concurrent requests predicted in one call (1: off)",
                               low=1)
    batch_wait_ms: float = _setting(0.0, "how long a micro-batch waits for more requests (0: only those waiting)",
                                    low=0)
    monitoring: bool = _setting(True, "observe metrics (false only to measure what monitoring costs)")
    log_level: str = _setting("warning", "uvicorn's log level")
    follow_alias: str = _setting("0", "serving models:/NAME@ALIAS: how often to ask the registry where the alias "
                                      "points, and switch to a new version (0: never)", low=0, duration=True)
    # The collector (`modelmon collect`)
    collector_wait_seconds: float = _setting(30.0, "collector: how long a logged request waits for its response "
                                                   "(and back) before it is counted unmatched", low=0.001)
    collector_max_pending: int = _setting(10_000, "collector: halves waiting for their other half at most (the "
                                                  "oldest give up first)", low=1)
    # The prediction log
    prediction_log: str = _setting(
        "runs/{model}/predictions.sqlite",
        "where predictions are logged for /feedback: a SQLite file, a SQLAlchemy URL, or `off`; `{model}` in it "
        "stands for the model's name, so that by default each model has a file of its own")
    log_queue_rows: int = _setting(10_000, "predictions held in memory before the oldest are dropped", low=1)
    log_flush_seconds: float = _setting(0.5, "how often the prediction log is written", low=0.001)
    log_retention: str = _setting("30d", "delete logged predictions older than this (0: keep)", low=0,
                                  duration=True)
    log_max_rows: int = _setting(0, "keep at most this many logged predictions, the newest (0: no limit)", low=0)
    # Prometheus
    scrape_interval: str = _setting("5s", "how often Prometheus scrapes", demo="1s", duration=True)
    evaluation_interval: str = _setting("5s", "how often rules are evaluated", demo="1s", duration=True)
    rate_window: str = _setting("5m", "window of rates and ratios", demo="30s", duration=True)
    drift_window: str = _setting("10m", "window of the drift statistics (KS, PSI)", demo="1m", duration=True)
    quality_window: str = _setting("1h", "window of the quality from labels (they arrive late, for part of the "
                                         "traffic)", demo="1m", duration=True)
    short_window: str = _setting("1m", "window of the fast branch of the rate and drift alerts: an abrupt change "
                                       "pages from it before the long windows fill", demo="10s", duration=True)
    alert_for: str = _setting("1m", "how long a condition holds before its alert fires (the rate and drift alerts "
                                    "weigh their evidence already; this rides out a single evaluation)",
                              demo="10s", duration=True)
    down_for: str = _setting("1m", "how long a target is unreachable before ModelServerDown", demo="5s",
                             duration=True)
    # Thresholds (the workshop's alert: success rate of stores under 20 %)
    positive_rate_floor: float = _setting(0.20, "ModelLowPositiveRate: positive-class share under this", low=0.001,
                                          high=0.999)
    psi_threshold: float = _setting(0.2, "ModelFeatureDrift: PSI over this (numeric bins or category shares)",
                                    low=0.001)
    ks_threshold: float = _setting(0.2, "ModelFeatureDrift: or KS over this (numeric inputs; a regressor's "
                                        "predictions for ModelPredictionDrift)", low=0.001, high=0.999)
    prediction_psi_threshold: float = _setting(0.2, "ModelPredictionDrift: PSI of the class shares (a regressor: "
                                                    "of its predicted values' rank bins) over this", low=0.001)
    missing_share_tolerance: float = _setting(
        0.1, "ModelFeatureMissing: live missing share of an input differs from training's by more than this",
        low=0.001, high=0.999)
    invalid_ratio_threshold: float = _setting(0.05, "ModelInvalidInputRate: share of invalid requests over this",
                                              low=0.001, high=0.999)
    error_ratio_threshold: float = _setting(0.01, "ModelServerErrors: share of 5xx answers over this", low=0.001,
                                            high=0.999)
    latency_p99_seconds: float = _setting(0.5, "ModelHighLatency: p99 latency over this (seconds)", low=0.001)
    accuracy_floor: float = _setting(0.8, "ModelQualityDrop: accuracy on the labels of the quality window under "
                                          "this", low=0.001, high=0.999)
    concept_drift_margin: float = _setting(
        0.1, "ModelConceptDrift: accuracy on the labels under the estimated accuracy (calibrated probabilities, "
             "same window) by more than this", low=0.001, high=0.999)
    mae_ratio: float = _setting(1.5, "ModelQualityDrop (regressors): MAE on the labels of the quality window over "
                                     "this multiple of the training MAE", low=1.001)
    # Evidence: a rate or drift alert fires only when its window's count makes the effect
    # unlikely to be chance (modelmon.stats.evidence), on top of the effect thresholds above.
    confidence: float = _setting(0.9999, "confidence of the evidence that ModelLowPositiveRate, ModelFeatureDrift, "
                                        "ModelPredictionDrift, ModelEstimatedQualityDrop and ModelConceptDrift need: "
                                        "the Wilson bounds of the positive rate and of the accuracies, the KS and PSI "
                                        "critical values for the window's count are taken at this level",
                                 low=0.5, high=0.999999)
    short_factor: float = _setting(2.0, "the fast branch (short_window) of the drift alerts needs a PSI this many "
                                        "times its threshold (and weighs PSI alone); the positive rate's keeps the "
                                        "floor, its bound over fewer rows being the stricter test", low=1.0)
    # Traffic guards: below these counts a window's statistic is not trusted at all.
    min_samples: int = _setting(200, "requests in the rate window before a service ratio alert (invalid input, 5xx, "
                                     "latency) may fire", low=1)
    min_per_bin: int = _setting(10, "values per bin (a tenth of an input's training range, a category, a class) a "
                                    "window must hold before a drift alert weighs its PSI: the chi-square "
                                    "approximation behind its critical value needs about ten (KS and the positive "
                                    "rate's Wilson bound need no guard)", low=1)
    min_drift_samples: int = _setting(100, "rows in the drift window before ModelFeatureMissing may fire", low=1)
    min_labels: int = _setting(100, "labels in the quality window before ModelQualityDrop may fire", low=1)
    # Alertmanager
    group_wait: str = _setting("10s", "Alertmanager: wait before the first notification of a group", demo="1s",
                               duration=True)
    group_interval: str = _setting("1m", "Alertmanager: wait before notifying a group's changes", demo="5s",
                                   duration=True)
    repeat_interval: str = _setting("4h", "Alertmanager: re-send a firing alert this often", demo="1h",
                                    duration=True)
    slack_channel: str = _setting("#model-alerts", "Slack channel of the notifications")
    slack_webhook_file: str = _setting(
        "", "file Alertmanager reads the Slack webhook URL from (empty: the stack's default: the compose secret, "
            "or the local receiver natively)")
    # Kubernetes (`stack render --target kubernetes`)
    kubernetes_namespace: str = _setting("modelmon", "Kubernetes: the namespace of the model's objects")
    kubernetes_monitoring_namespace: str = _setting(
        "monitoring", "Kubernetes: the namespace Prometheus runs in (the only one the NetworkPolicy lets reach "
                      "/metrics)")
    kubernetes_release: str = _setting(
        "kube-prometheus-stack", "Kubernetes: the `release` label of the ServiceMonitor, PrometheusRule and "
                                 "AlertmanagerConfig, which kube-prometheus-stack's selectors match (its Helm "
                                 "release name)")
    kubernetes_min_replicas: int = _setting(2, "Kubernetes: the HorizontalPodAutoscaler's fewest pods", low=1)
    kubernetes_max_replicas: int = _setting(6, "Kubernetes: the HorizontalPodAutoscaler's most pods", low=1)
    # A fleet (`modelmon up --replicas N --shards M`)
    replicas: int = _setting(1, "fleet: app processes `modelmon up` starts, on consecutive ports from app_port",
                             low=1, high=64)
    shards: int = _setting(1, "fleet: Prometheus servers, on consecutive ports from prometheus_port, each scraping "
                              "its share of the replicas with its own `cluster` label; above 1 they remote-write "
                              "into one VictoriaMetrics (the global store)", low=1, high=16)
    rule_evaluation: str = _setting(
        "global", "fleet with shards: where the rules run: `global` (vmalert over the global store: sums over "
                  "every cluster) or `cluster` (each Prometheus over its own replicas); never both",
        choices=RULE_EVALUATIONS)
    victoria_metrics_port: int = _setting(8428, "fleet: VictoriaMetrics' port (the global store)", low=1,
                                          high=65535)
    vmalert_port: int = _setting(8880, "fleet: vmalert's port", low=1, high=65535)
    # Where the other parts listen (native mode binds them all to `host`)
    prometheus_port: int = _setting(9090, "Prometheus' port", low=1, high=65535)
    alertmanager_port: int = _setting(9093, "Alertmanager's port", low=1, high=65535)
    receiver_port: int = _setting(9099, "the local Slack stand-in's port", low=1, high=65535)
    grafana_port: int = _setting(3000, "Grafana's port (compose)", low=1, high=65535)
    grafana_url: str = _setting("http://localhost:3000", "Grafana's address, for the alerts' dashboard links")
    # Grafana login: only the demo profile has a default (the workshop's), never production.
    grafana_admin_user: str = _setting("admin", "Grafana admin user (compose)", demo="mlreply")
    grafana_admin_password: str = _setting("", "Grafana admin password (compose; empty: set it in deploy/.env)",
                                           demo="mlreply")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check(f, getattr(self, f.name))
        for longer in ("rate_window", "drift_window"):
            if seconds(self.short_window) >= seconds(getattr(self, longer)):
                raise SettingsError(f"Setting short_window ({self.short_window}) must be shorter than {longer} "
                                    f"({getattr(self, longer)}): it is the fast branch beside it.")
        if self.kubernetes_max_replicas < self.kubernetes_min_replicas:
            raise SettingsError(f"Setting kubernetes_max_replicas ({self.kubernetes_max_replicas}) must be at least "
                                f"kubernetes_min_replicas ({self.kubernetes_min_replicas}).")
        for name in ("kubernetes_namespace", "kubernetes_monitoring_namespace", "kubernetes_release"):
            value = getattr(self, name)
            if not _DNS_LABEL.fullmatch(value):
                raise SettingsError(f"Setting {name} must be a Kubernetes name (lower-case letters, digits and '-', "
                                    f"at most 63, starting and ending alphanumeric), got {value!r}.")

    @property
    def global_store(self) -> bool:
        """Several Prometheus shards: they remote-write into VictoriaMetrics."""
        return self.shards > 1

    @property
    def rules_in_vmalert(self) -> bool:
        return self.global_store and self.rule_evaluation == "global"

    @property
    def demo_credentials(self) -> bool:
        return self.profile == "demo" and self.grafana_admin_password == "mlreply"

    @property
    def metrics_on_app(self) -> bool:
        return self.metrics_port == 0

    @property
    def prediction_log_on(self) -> bool:
        return bool(self.prediction_log) and self.prediction_log.lower() != "off"

    def prediction_log_of(self, model: str) -> str:
        """The prediction log of `model`: `{model}` in the setting replaced by its name (kept to
        letters, digits and . _ -, so that any name makes one folder of a path)."""
        return self.prediction_log.replace("{model}", re.sub(r"[^A-Za-z0-9._-]", "_", model).lstrip(".") or "model")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> float:
    """Prometheus duration (one unit, e.g. `30s`, `5m`; `0` for none) in seconds."""
    if duration == "0":
        return 0.0
    match = _DURATION.match(duration)
    if not match:
        raise SettingsError(f"{duration!r} is not a duration like 30s, 5m or 1h.")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _check(f: dataclasses.Field[Any], value: Any) -> None:
    meta = f.metadata
    if meta.get("duration"):
        try:
            number = seconds(value)
        except SettingsError as exc:
            raise SettingsError(f"Setting {f.name}: {exc}") from None
        if number <= 0 and meta.get("low") != 0:
            raise SettingsError(f"Setting {f.name} must be a positive duration, got {value!r}.")
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise SettingsError(f"Setting {f.name} must be one of {', '.join(choices)}, got {value!r}.")
    low, high = meta.get("low"), meta.get("high")
    if low is not None and value < low:
        raise SettingsError(f"Setting {f.name} must be >= {low}, got {value!r}.")
    if high is not None and value > high:
        raise SettingsError(f"Setting {f.name} must be <= {high}, got {value!r}.")


_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in _TRUE | _FALSE:
            return str(raw).lower() in _TRUE
        raise SettingsError(f"Setting {name} must be true or false, got {raw!r}.")
    if kind is int and isinstance(raw, float) and not raw.is_integer():
        raise SettingsError(f"Setting {name} must be a whole number, got {raw!r}.")
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"Setting {name} must be {'an' if kind is int else 'a'} {kind.__name__}, "
                            f"got {raw!r}.") from None


def _fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(Settings)}


@dataclass(frozen=True)
class SettingDoc:
    """What one setting is, for a command-line flag that overrides it: its type, defaults,
    allowed values and help, as the field declares them (written once, there)."""

    name: str
    kind: type
    default: Any
    demo: Any
    doc: str
    choices: tuple[str, ...] | None


def setting_doc(name: str) -> SettingDoc:
    f = _fields()[name]
    meta = f.metadata
    return SettingDoc(name, _TYPES[str(f.type)], f.default, meta["demo"], meta["doc"], meta["choices"])


def load_settings(
    profile: str | None = None,
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Profile defaults, then the file, then MODELMON_* variables, then flags (the last word
    wins). `flags` holds only the options given on the command line (None means not given).
    The profile is the one named, else the file's `profile`, else `production`."""
    overrides: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except OSError as exc:
            raise SettingsError(f"Could not read the settings file {file} ({exc.strerror}).") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"Settings file {file} is not valid YAML ({exc}).") from None
        if not isinstance(loaded, dict):
            raise SettingsError(f"Settings file {file} must be a mapping of setting: value.")
        overrides.update(loaded)
    named = overrides.pop("profile", None)
    if profile is not None and named is not None and named != profile:
        raise SettingsError(f"The settings file {file} is for the {named!r} profile, not {profile!r}; "
                            "drop one of them.")
    profile = profile or named or "production"
    if profile not in PROFILES:
        raise SettingsError(f"Unknown settings profile {profile!r}; choose one of {', '.join(PROFILES)}.")
    fields = _fields()
    values: dict[str, Any] = {"profile": profile}
    if profile == "demo":
        values.update({name: f.metadata["demo"] for name, f in fields.items() if f.metadata["demo"] is not None})
    env = os.environ if env is None else env
    for name in fields:
        if ENV_PREFIX + name.upper() in env:
            overrides[name] = env[ENV_PREFIX + name.upper()]
    overrides.update({k: v for k, v in (flags or {}).items() if v is not None})
    for name, raw in overrides.items():
        if name not in fields or name == "profile":
            raise SettingsError(f"Unknown setting {name!r}; known settings: {', '.join(sorted(fields))}.")
        values[name] = _coerce(name, raw, _TYPES[str(fields[name].type)])
    return Settings(**values)


def settings_reference() -> str:
    """The README's settings table, made from the field declarations."""
    lines = ["| setting | environment | default | demo | what |", "|---|---|---|---|---|"]
    for name, f in _fields().items():
        if name == "profile":
            continue
        demo = f.metadata["demo"]
        lines.append(f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | `{f.default!r}` | "
                     f"{'' if demo is None else f'`{demo!r}`'} | {f.metadata['doc']} |")
    return "\n".join(lines)


_NOT_WRITTEN = frozenset({"grafana_admin_password"})  # a secret stays out of rendered files


def settings_yaml(settings: Settings) -> str:
    """The settings a stack was rendered with, readable by `read_settings_file`."""
    values = {k: v for k, v in dataclasses.asdict(settings).items() if k not in _NOT_WRITTEN}
    return ("# The settings this stack was rendered with; `modelmon serve --settings` and `modelmon report\n"
            "# --stack` read them from here.\n"
            + yaml.safe_dump(values, sort_keys=False))


def read_settings_file(path: Path) -> Settings:
    """Exactly the settings `settings_yaml` wrote (the environment does not change them)."""
    return load_settings(file=path, env={})

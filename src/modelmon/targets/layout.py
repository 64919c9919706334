"""The parts of a stack (app, Prometheus, Alertmanager, the Slack stand-in, Grafana, and in a
fleet VictoriaMetrics and vmalert), where each listens in each topology, the instances a fleet
runs, and the layout of the folder a stack is rendered into.

`compose` topology: services find each other by name (the committed `deploy/` folder).
`native` topology: everything on one host, for `modelmon up` without Docker; with settings
`replicas`/`shards` a fleet: N app processes, M Prometheus shards (each its share of the
replicas and its own `cluster` label) remote-writing into one VictoriaMetrics, where vmalert
evaluates the same rules over every cluster (or each shard evaluates them for its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelmon.model.reference import ReferenceProfile
from modelmon.rules.alerts import dashboard_uid
from modelmon.settings import Settings, SettingsError
from modelmon.targets.container import CONTAINER_PORT

Topology = Literal["compose", "native"]


COMPOSE_SECRET = "/run/secrets/slack_webhook_url"


WEBHOOK_EXAMPLE = "alertmanager/slack_webhook_url.example"


@dataclass(frozen=True)
class Part:
    """One process of the stack: its name (also its compose service), its port setting, the
    path that answers 200 once it is ready, and whether `modelmon up` runs it natively."""

    name: str
    port_setting: str  # the Settings field that holds its port
    ready_path: str
    native: bool = True
    compose_port: int = 0  # the port inside its container

    def port(self, settings: Settings) -> int:
        return int(getattr(settings, self.port_setting))

    def moved(self, settings: Settings, port: int) -> Settings:
        """The same settings with this part on another port."""
        return settings.replace(**{self.port_setting: port})

    def address(self, settings: Settings, topology: Topology) -> str:
        if topology == "native":
            return f"{settings.host}:{self.port(settings)}"
        return f"{self.name}:{self.compose_port}"

    def url(self, settings: Settings) -> str:
        return f"http://{settings.host}:{self.port(settings)}"


APP = Part("app", "app_port", "/ready", compose_port=CONTAINER_PORT)


PROMETHEUS = Part("prometheus", "prometheus_port", "/-/ready", compose_port=9090)


ALERTMANAGER = Part("alertmanager", "alertmanager_port", "/-/ready", compose_port=9093)


RECEIVER = Part("receiver", "receiver_port", "/health", compose_port=9099)


GRAFANA = Part("grafana", "grafana_port", "/api/health", native=False, compose_port=3000)


# The global store of a fleet, and the rule evaluator that reads it (native only).
VICTORIA_METRICS = Part("victoria-metrics", "victoria_metrics_port", "/health", compose_port=8428)


VMALERT = Part("vmalert", "vmalert_port", "/health", compose_port=8880)


PARTS = (APP, PROMETHEUS, ALERTMANAGER, RECEIVER, GRAFANA, VICTORIA_METRICS, VMALERT)


NATIVE_PARTS = (APP, PROMETHEUS, ALERTMANAGER, RECEIVER)  # a single-host run without a fleet


@dataclass(frozen=True)
class Instance:
    """One process of a native run: `index` of `count` of its part (replicas, shards) on the
    part's port + index. Alone, it has the part's name; in a fleet, `app-1` ... `app-N`."""

    part: Part
    index: int = 0
    count: int = 1

    @property
    def name(self) -> str:
        return self.part.name if self.count == 1 else f"{self.part.name}-{self.index + 1}"

    @property
    def cluster(self) -> str:
        """A Prometheus shard's `cluster` label (its external label in a fleet)."""
        return f"cluster-{self.index + 1}"

    def port(self, settings: Settings) -> int:
        return self.part.port(settings) + self.index

    def address(self, settings: Settings) -> str:
        return f"{settings.host}:{self.port(settings)}"

    def url(self, settings: Settings) -> str:
        return f"http://{self.address(settings)}"

    def ready_url(self, settings: Settings) -> str:
        return self.url(settings) + self.part.ready_path


def replicas(settings: Settings) -> tuple[Instance, ...]:
    return tuple(Instance(APP, i, settings.replicas) for i in range(settings.replicas))


def shards(settings: Settings) -> tuple[Instance, ...]:
    return tuple(Instance(PROMETHEUS, j, settings.shards) for j in range(settings.shards))


def scraped_by(shard: Instance, settings: Settings) -> tuple[Instance, ...]:
    """The replicas a shard scrapes: every `shards`-th, so they are shared out evenly."""
    return tuple(r for r in replicas(settings) if r.index % shard.count == shard.index)


def native_instances(settings: Settings) -> tuple[Instance, ...]:
    """Every process `modelmon up` starts with these settings, in start order; refused when
    two would share a port."""
    run = [Instance(RECEIVER), *replicas(settings), *shards(settings), Instance(ALERTMANAGER)]
    if settings.global_store:
        run.insert(-1, Instance(VICTORIA_METRICS))
        if settings.rules_in_vmalert:
            run.append(Instance(VMALERT))
    taken: dict[int, str] = {}
    for instance in run:
        port = instance.port(settings)
        if port in taken:
            raise SettingsError(f"{instance.name} and {taken[port]} would both listen on port {port}: move one "
                                f"with its setting {instance.part.port_setting} (replicas and shards take "
                                "consecutive ports).")
        taken[port] = instance.name
    return tuple(run)


def part_named(name: str) -> Part:
    for part in PARTS:
        if part.name == name:
            return part
    raise ValueError(f"no stack part {name!r}; parts: {', '.join(p.name for p in PARTS)}")


@dataclass(frozen=True)
class Layout:
    """Where each file of a rendered stack (and a native run's data) lives under `root`."""

    root: Path
    dashboard_uid: str

    @property
    def prometheus_config(self) -> Path:
        return self.root / "prometheus" / "prometheus.yml"

    @property
    def rules(self) -> Path:
        return self.root / "prometheus" / "rules"

    def shard_config(self, shard: Instance) -> Path:
        if shard.count == 1:
            return self.prometheus_config
        return self.root / "prometheus" / f"{shard.name}.yml"

    def shard_data(self, shard: Instance) -> Path:
        return self.root / f"{shard.name}-data"

    @property
    def victoria_metrics_data(self) -> Path:
        return self.root / "victoria-metrics-data"

    @property
    def rule_tests(self) -> Path:
        return self.root / "prometheus" / "tests"

    @property
    def alertmanager_config(self) -> Path:
        return self.root / "alertmanager" / "alertmanager.yml"

    @property
    def alertmanager_templates(self) -> Path:
        return self.root / "alertmanager" / "templates"

    @property
    def webhook_secret(self) -> Path:
        """Natively: the file Alertmanager reads the Slack webhook URL from, unless set."""
        return self.root / "alertmanager" / "secrets" / "slack_webhook_url"

    @property
    def webhook_example(self) -> Path:
        return self.root / WEBHOOK_EXAMPLE

    @property
    def dashboard(self) -> Path:
        return self.root / "grafana" / "dashboards" / f"{self.dashboard_uid}.json"

    @property
    def grafana_provisioning(self) -> Path:
        return self.root / "grafana" / "provisioning"

    @property
    def compose(self) -> Path:
        return self.root / "docker-compose.yaml"

    # A native run's data, beside its configuration.
    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, part: str) -> Path:
        return self.logs / f"{part}.log"

    @property
    def notifications(self) -> Path:
        return self.root / "notifications.jsonl"

    @property
    def prediction_log(self) -> Path:
        return self.root / "predictions.sqlite"

    @property
    def prometheus_data(self) -> Path:
        return self.root / "prometheus-data"

    @property
    def alertmanager_data(self) -> Path:
        return self.root / "alertmanager-data"

    @property
    def phases(self) -> Path:
        return self.root / "phases.json"

    @property
    def settings(self) -> Path:
        """The settings the stack was rendered with, so `report` can read its windows."""
        return self.root / "modelmon-settings.yaml"


def layout_of(profile: ReferenceProfile, root: Path) -> Layout:
    return Layout(root, dashboard_uid(profile))

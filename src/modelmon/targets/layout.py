"""Render the whole monitoring stack for one model into a folder.

`compose` topology: services find each other by name (the committed `deploy/` folder).
`native` topology: everything on one host, for `modelmon up` without Docker; with settings
`replicas`/`shards` a fleet: N app processes, M Prometheus shards (each its share of the
replicas and its own `cluster` label) remote-writing into one VictoriaMetrics, where vmalert
evaluates the same rules over every cluster (or each shard evaluates them for its own).
`render_kubernetes`: a kustomize base for the Prometheus Operator (modelmon.targets.kubernetes).
Every file comes from the reference profile and one Settings object; nothing is hand-copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelmon import __version__
from modelmon.contract.routes import SLACK_PATH
from modelmon.model.profile import ReferenceProfile
from modelmon.rules.alertmanager import SLACK_TEMPLATES, TEMPLATE_FILE, alertmanager_config
from modelmon.rules.alerts import dashboard_uid
from modelmon.rules.files import rule_files
from modelmon.rules.render import dump_yaml
from modelmon.rules.series import JOB
from modelmon.ruletests.suite import rule_tests
from modelmon.settings import Settings, SettingsError, seconds, settings_yaml
from modelmon.targets.container import CONTAINER_DATA, CONTAINER_LOG, CONTAINER_PORT
from modelmon.targets.dashboards import DATASOURCE_UID, dashboard_json
from modelmon.targets.kubernetes import kubernetes_files

Topology = Literal["compose", "native"]

# Pinned images for the compose stack (Grafana matches the SDK build the dashboards target).
IMAGES = {
    "python": "python:3.11.11-slim-bookworm",
    "prometheus": "prom/prometheus:v2.53.4",
    "alertmanager": "prom/alertmanager:v0.27.0",
    "grafana": "grafana/grafana:11.6.0",
}
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


@dataclass(frozen=True)
class RenderedStack:
    layout: Layout
    files: tuple[Path, ...]


def prometheus_config(settings: Settings, topology: Topology, shard: Instance | None = None) -> str:
    """One Prometheus' configuration; in a native fleet, shard `shard`'s (its replicas, its
    `cluster` label, remote write into the global store; the rules only when they are
    evaluated per cluster)."""

    def at(part: Part) -> str:
        # Prometheus scrapes itself at localhost inside its container.
        return "localhost:9090" if part is PROMETHEUS and topology == "compose" else part.address(settings, topology)

    shard = shard or Instance(PROMETHEUS)
    fleet = topology == "native" and settings.global_store
    apps = [r.address(settings) for r in scraped_by(shard, settings)] if topology == "native" else [at(APP)]
    myself = shard.address(settings) if topology == "native" else at(PROMETHEUS)
    external_labels = {"monitor": "modelmon"}
    config: dict[str, object] = {
        "global": {
            "scrape_interval": settings.scrape_interval,
            "evaluation_interval": settings.evaluation_interval,
            "external_labels": external_labels,
        },
    }
    if fleet:
        external_labels["cluster"] = shard.cluster
    if not (fleet and settings.rules_in_vmalert):
        config["rule_files"] = ["rules/*.yml"]
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [at(ALERTMANAGER)]}]}]}
    scrapes = [
        {"job_name": JOB, "metrics_path": "/metrics", "static_configs": [{"targets": apps}]},
        {"job_name": "prometheus", "static_configs": [{"targets": [myself]}]},
    ]
    if shard.index == 0:
        scrapes.append({"job_name": "alertmanager", "static_configs": [{"targets": [at(ALERTMANAGER)]}]})
    config["scrape_configs"] = scrapes
    if fleet:
        # Samples leave within one scrape interval; while the store is away they wait in the
        # WAL (about two hours) and are sent when it is back.
        config["remote_write"] = [{
            "url": f"{VICTORIA_METRICS.url(settings)}/api/v1/write",
            "queue_config": {"batch_send_deadline": settings.scrape_interval, "min_backoff": "1s",
                             "max_backoff": "10s"},
        }]
    return dump_yaml(config)


def vmalert_args(settings: Settings, layout: Layout) -> list[str]:
    """vmalert's flags: the generated rule files over the global store, recorded series and
    alert state written back into it, notifications to Alertmanager."""
    store = VICTORIA_METRICS.url(settings)
    return [
        f"-rule={layout.rules}/*.yml",
        f"-datasource.url={store}",
        f"-remoteWrite.url={store}",
        f"-remoteRead.url={store}",  # restores the `for` state of pending alerts after a restart
        f"-notifier.url={ALERTMANAGER.url(settings)}",
        f"-evaluationInterval={settings.evaluation_interval}",
        f"-httpListenAddr={VMALERT.address(settings, 'native')}",
        f"-rule.resendDelay={settings.group_interval}",
        "-external.label=cluster=global",
        "-disableAlertgroupLabel",  # alerts carry the same labels as Prometheus gives them
        "-loggerLevel=WARN",
    ]


def victoria_metrics_args(settings: Settings, layout: Layout) -> list[str]:
    # A sample is visible to queries this long after it was scraped (VictoriaMetrics' default,
    # 30 s, would delay every alert by as much): two scrape intervals cover one remote-write batch.
    offset = f"{max(1, round(2 * seconds(settings.scrape_interval)))}s"
    return [
        f"-storageDataPath={layout.victoria_metrics_data}",
        f"-httpListenAddr={VICTORIA_METRICS.address(settings, 'native')}",
        "-retentionPeriod=30d",
        f"-search.latencyOffset={offset}",
        # Samples of a shard that was away arrive late; a cached result would hide them.
        "-search.disableCache",
        "-loggerLevel=WARN",
    ]


def _grafana_provisioning(settings: Settings) -> dict[str, str]:
    """Grafana's data source and dashboard provider, by path under grafana/provisioning/."""
    datasource = {
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus",
            "uid": DATASOURCE_UID,
            "type": "prometheus",
            "access": "proxy",
            "url": f"http://{PROMETHEUS.address(settings, 'compose')}",
            "isDefault": True,
            "jsonData": {"timeInterval": settings.scrape_interval},
        }],
    }
    provider = {
        "apiVersion": 1,
        "providers": [{
            "name": "modelmon",
            "folder": "modelmon",
            "type": "file",
            "disableDeletion": True,
            "options": {"path": "/var/lib/grafana/dashboards"},
        }],
    }
    return {
        "datasources/prometheus.yml": dump_yaml(datasource),
        "dashboards/modelmon.yml": dump_yaml(provider),
    }


def _compose(model_mount: str, dashboard_file: str, settings: Settings) -> str:
    app_image = f"modelmon:{__version__}"
    wget = ["CMD", "wget", "-q", "-O", "/dev/null"]

    def published(part: Part, host_port: int | None = None) -> list[str]:
        return [f"{host_port or part.compose_port}:{part.compose_port}"]

    def ready(part: Part) -> list[str]:
        return [*wget, f"http://localhost:{part.compose_port}{part.ready_path}"]

    compose = {
        "services": {
            "app": {
                "build": {"context": "..", "dockerfile": "deploy/Dockerfile"},
                "image": app_image,
                "command": ["modelmon", "serve", "/model", "--host", "0.0.0.0", "--port", str(APP.compose_port),
                            "--prediction-log", f"${{PREDICTION_LOG:-{CONTAINER_LOG}}}"],
                "volumes": [f"{model_mount}:/model:ro", f"prediction-log:{CONTAINER_DATA}"],
                "ports": published(APP),
                "healthcheck": {
                    "test": ["CMD", "python", "-c", "import urllib.request; "
                             f"urllib.request.urlopen('http://127.0.0.1:{APP.compose_port}{APP.ready_path}')"],
                    "interval": "10s", "timeout": "3s", "retries": 5, "start_period": "20s",
                },
                "restart": "unless-stopped",
            },
            "receiver": {
                "image": app_image,
                "command": ["modelmon", "receive", "--host", "0.0.0.0", "--port", str(RECEIVER.compose_port),
                            "--log", "/data/notifications.jsonl"],
                "volumes": ["receiver-data:/data"],
                "depends_on": ["app"],
                "restart": "unless-stopped",
            },
            "prometheus": {
                "image": IMAGES["prometheus"],
                "command": [
                    "--config.file=/etc/prometheus/prometheus.yml",
                    "--storage.tsdb.path=/prometheus",
                    "--storage.tsdb.retention.time=15d",
                    "--web.enable-lifecycle",
                ],
                "volumes": ["./prometheus:/etc/prometheus:ro", "prometheus-data:/prometheus"],
                "ports": published(PROMETHEUS),
                "healthcheck": {"test": ready(PROMETHEUS), "interval": "10s", "retries": 5},
                "depends_on": {"app": {"condition": "service_healthy"}},
                "restart": "unless-stopped",
            },
            "alertmanager": {
                "image": IMAGES["alertmanager"],
                "command": ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
                "volumes": ["./alertmanager:/etc/alertmanager:ro", "alertmanager-data:/alertmanager"],
                "secrets": ["slack_webhook_url"],
                "ports": published(ALERTMANAGER),
                "healthcheck": {"test": ready(ALERTMANAGER), "interval": "10s", "retries": 5},
                "restart": "unless-stopped",
            },
            "grafana": {
                "image": IMAGES["grafana"],
                "environment": {
                    "GF_SECURITY_ADMIN_USER": "${GRAFANA_ADMIN_USER:?set GRAFANA_ADMIN_USER in deploy/.env}",
                    "GF_SECURITY_ADMIN_PASSWORD": "${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD in deploy/.env}",
                    "GF_USERS_ALLOW_SIGN_UP": "false",
                    "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": f"/var/lib/grafana/dashboards/{dashboard_file}",
                },
                "volumes": [
                    "./grafana/provisioning:/etc/grafana/provisioning:ro",
                    "./grafana/dashboards:/var/lib/grafana/dashboards:ro",
                    "grafana-data:/var/lib/grafana",
                ],
                "ports": published(GRAFANA, settings.grafana_port),
                "healthcheck": {"test": ready(GRAFANA), "interval": "10s", "retries": 5},
                "depends_on": {"prometheus": {"condition": "service_healthy"}},
                "restart": "unless-stopped",
            },
        },
        "secrets": {"slack_webhook_url": {"file": f"${{SLACK_WEBHOOK_URL_FILE:-./{WEBHOOK_EXAMPLE}}}"}},
        "volumes": {"prometheus-data": {}, "alertmanager-data": {}, "grafana-data": {}, "receiver-data": {},
                    "prediction-log": {}},
    }
    return dump_yaml(compose)


def _dockerfile() -> str:
    return f"""\
# The modelmon app image: the package only; the model is mounted at /model.
FROM {IMAGES["python"]}
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir '.[postgres]' && useradd --system --uid 10001 modelmon \
    && mkdir -p {CONTAINER_DATA} && chown modelmon {CONTAINER_DATA}
USER modelmon
EXPOSE {APP.compose_port}
CMD ["modelmon", "serve", "/model", "--host", "0.0.0.0", "--port", "{APP.compose_port}", \
     "--prediction-log", "{CONTAINER_LOG}"]
"""


def _env_example(settings: Settings) -> str:
    if settings.demo_credentials:
        login = (
            "# DEMO ONLY: the public workshop's login. Never use it beyond a laptop demo.\n"
            f"GRAFANA_ADMIN_USER={settings.grafana_admin_user}\n"
            f"GRAFANA_ADMIN_PASSWORD={settings.grafana_admin_password}\n"
        )
    else:
        login = (
            "# Grafana's admin login: choose a password; compose refuses to start without one.\n"
            f"GRAFANA_ADMIN_USER={settings.grafana_admin_user}\n"
            "GRAFANA_ADMIN_PASSWORD=\n"
        )
    return (
        "# Copy to deploy/.env (git ignores it) and fill in.\n"
        "COMPOSE_PROJECT_NAME=modelmon\n"
        + login
        + "# A file that holds your Slack incoming-webhook URL (a secret: keep it out of git).\n"
        f"# Default: the bundled local receiver, which only logs notifications.\n"
        f"SLACK_WEBHOOK_URL_FILE=./{WEBHOOK_EXAMPLE}\n"
        "# Where the app logs predictions for /feedback (default: SQLite in the prediction-log volume).\n"
        "# Several app replicas must share one database, e.g.:\n"
        "# PREDICTION_LOG=postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE\n"
    )


def render_stack(
    profile: ReferenceProfile,
    settings: Settings,
    out: Path,
    topology: Topology = "compose",
    model_dir: Path | None = None,
) -> RenderedStack:
    """Write every file of the stack under `out`; the layout says where each one is."""
    layout = layout_of(profile, out)
    rules = rule_files(profile, settings)
    if settings.slack_webhook_file:
        webhook_file = settings.slack_webhook_file
    elif topology == "compose":
        webhook_file = COMPOSE_SECRET
    else:
        webhook_file = str(layout.webhook_secret.resolve())

    def rel(path: Path) -> str:
        return path.relative_to(out).as_posix()

    configs = ({rel(layout.shard_config(shard)): prometheus_config(settings, topology, shard)
                for shard in shards(settings)} if topology == "native" else
               {rel(layout.prometheus_config): prometheus_config(settings, topology)})
    files: dict[str, str] = {
        **configs,
        **{rel(layout.rules / name): text for name, text in rules.items()},
        **{rel(layout.rule_tests / name): text
           for name, text in rule_tests(profile, settings, [f"../rules/{name}" for name in rules]).items()},
        rel(layout.alertmanager_config): alertmanager_config(settings.replace(slack_webhook_file=webhook_file)),
        rel(layout.alertmanager_templates / TEMPLATE_FILE): SLACK_TEMPLATES,
        # Natively there is no Grafana, but the dashboard is the one definition of the panels
        # that tests and reports query.
        rel(layout.dashboard): dashboard_json(profile, settings),
        rel(layout.settings): settings_yaml(settings),
    }
    if topology == "compose":
        if model_dir is None:
            raise ValueError("the compose topology needs the model directory to mount")
        mount = os.path.relpath(model_dir.resolve(), out.resolve())
        # The dashboard itself is already among the files: rendered once, for every topology.
        files.update({rel(layout.grafana_provisioning / name): text
                      for name, text in _grafana_provisioning(settings).items()})
        files[rel(layout.webhook_example)] = f"http://{RECEIVER.address(settings, topology)}{SLACK_PATH}\n"
        files[rel(layout.compose)] = _compose(mount, layout.dashboard.name, settings)
        files["Dockerfile"] = _dockerfile()
        files[".env.example"] = _env_example(settings)
    return RenderedStack(layout, _write(out, files))


def render_kubernetes(profile: ReferenceProfile, settings: Settings, out: Path, model_dir: Path) -> tuple[Path, ...]:
    """Write the kustomize base under `out`; the model image's Dockerfile copies `model_dir`
    relative to the folder this runs in (the build context)."""
    model_path = Path(os.path.relpath(model_dir.resolve(), Path.cwd())).as_posix()
    return _write(out, kubernetes_files(profile, settings, dashboard_json(profile, settings), model_path))


def _write(out: Path, files: dict[str, str]) -> tuple[Path, ...]:
    written = []
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return tuple(written)

"""Render the whole monitoring stack for one model into a folder.

`compose` topology: services find each other by name (the committed `deploy/` folder).
`native` topology: everything on one host, for `modelmon up` without Docker.
Every file comes from the reference profile and one Settings object; nothing is hand-copied.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from . import __version__
from .alerting import SLACK_TEMPLATES, TEMPLATE_FILE, alertmanager_config
from .dashboards import DATASOURCE_UID, dashboard_json
from .profile import ReferenceProfile
from .rules import JOB, dashboard_uid, dump_yaml, rule_files
from .ruletests import rule_tests
from .settings import Settings

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


def _addresses(settings: Settings, topology: Topology) -> dict[str, str]:
    if topology == "native":
        h = settings.host
        return {
            "app": f"{h}:{settings.app_port}",
            "prometheus": f"{h}:{settings.prometheus_port}",
            "alertmanager": f"{h}:{settings.alertmanager_port}",
            "receiver": f"{h}:{settings.receiver_port}",
        }
    return {"app": "app:8000", "prometheus": "localhost:9090", "alertmanager": "alertmanager:9093",
            "receiver": "receiver:9099"}


def prometheus_config(settings: Settings, topology: Topology) -> str:
    at = _addresses(settings, topology)
    config = {
        "global": {
            "scrape_interval": settings.scrape_interval,
            "evaluation_interval": settings.evaluation_interval,
            "external_labels": {"monitor": "modelmon"},
        },
        "rule_files": ["rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [at["alertmanager"]]}]}]},
        "scrape_configs": [
            {"job_name": JOB, "metrics_path": "/metrics", "static_configs": [{"targets": [at["app"]]}]},
            {"job_name": "prometheus", "static_configs": [{"targets": [at["prometheus"]]}]},
            {"job_name": "alertmanager", "static_configs": [{"targets": [at["alertmanager"]]}]},
        ],
    }
    return dump_yaml(config)


def _grafana_files(profile: ReferenceProfile, settings: Settings) -> dict[str, str]:
    datasource = {
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus",
            "uid": DATASOURCE_UID,
            "type": "prometheus",
            "access": "proxy",
            "url": "http://prometheus:9090",
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
        "grafana/provisioning/datasources/prometheus.yml": dump_yaml(datasource),
        "grafana/provisioning/dashboards/modelmon.yml": dump_yaml(provider),
        f"grafana/dashboards/{dashboard_uid(profile)}.json": dashboard_json(profile, settings),
    }


def _compose(model_mount: str, dashboard_file: str, settings: Settings) -> str:
    app_image = f"modelmon:{__version__}"
    wget = ["CMD", "wget", "-q", "-O", "/dev/null"]
    compose = {
        "services": {
            "app": {
                "build": {"context": "..", "dockerfile": "deploy/Dockerfile"},
                "image": app_image,
                "command": ["modelmon", "serve", "/model", "--host", "0.0.0.0", "--port", "8000",
                            "--prediction-log", "${PREDICTION_LOG:-/var/lib/modelmon/predictions.sqlite}"],
                "volumes": [f"{model_mount}:/model:ro", "prediction-log:/var/lib/modelmon"],
                "ports": ["8000:8000"],
                "healthcheck": {
                    "test": ["CMD", "python", "-c",
                             "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready')"],
                    "interval": "10s", "timeout": "3s", "retries": 5, "start_period": "20s",
                },
                "restart": "unless-stopped",
            },
            "receiver": {
                "image": app_image,
                "command": ["modelmon", "receive", "--host", "0.0.0.0", "--port", "9099",
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
                "ports": ["9090:9090"],
                "healthcheck": {"test": [*wget, "http://localhost:9090/-/ready"], "interval": "10s", "retries": 5},
                "depends_on": {"app": {"condition": "service_healthy"}},
                "restart": "unless-stopped",
            },
            "alertmanager": {
                "image": IMAGES["alertmanager"],
                "command": ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
                "volumes": ["./alertmanager:/etc/alertmanager:ro", "alertmanager-data:/alertmanager"],
                "secrets": ["slack_webhook_url"],
                "ports": ["9093:9093"],
                "healthcheck": {"test": [*wget, "http://localhost:9093/-/ready"], "interval": "10s", "retries": 5},
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
                "ports": [f"{settings.grafana_port}:3000"],
                "healthcheck": {"test": [*wget, "http://localhost:3000/api/health"], "interval": "10s", "retries": 5},
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
    && mkdir -p /var/lib/modelmon && chown modelmon /var/lib/modelmon
USER modelmon
EXPOSE 8000
CMD ["modelmon", "serve", "/model", "--host", "0.0.0.0", "--port", "8000", \
     "--prediction-log", "/var/lib/modelmon/predictions.sqlite"]
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
) -> list[Path]:
    """Write every file of the stack under `out`; returns the paths written."""
    rules = rule_files(profile, settings)
    at = _addresses(settings, topology)
    if topology == "compose":
        webhook_file = COMPOSE_SECRET
    else:
        webhook_file = str((out / "alertmanager" / "secrets" / "slack_webhook_url").resolve())
    files: dict[str, str] = {
        "prometheus/prometheus.yml": prometheus_config(settings, topology),
        **{f"prometheus/rules/{name}": text for name, text in rules.items()},
        **{f"prometheus/tests/{name}": text
           for name, text in rule_tests(profile, settings, [f"../rules/{name}" for name in rules]).items()},
        "alertmanager/alertmanager.yml": alertmanager_config(settings.replace(slack_webhook_file=webhook_file)),
        f"alertmanager/templates/{TEMPLATE_FILE}": SLACK_TEMPLATES,
        # Natively there is no Grafana, but the dashboard is the one definition of the panels
        # that tests and reports query.
        f"grafana/dashboards/{dashboard_uid(profile)}.json": dashboard_json(profile, settings),
    }
    if topology == "compose":
        if model_dir is None:
            raise ValueError("the compose topology needs the model directory to mount")
        mount = os.path.relpath(model_dir.resolve(), out.resolve())
        files.update(_grafana_files(profile, settings))
        files[WEBHOOK_EXAMPLE] = f"http://{at['receiver']}/slack\n"
        files["docker-compose.yaml"] = _compose(mount, f"{dashboard_uid(profile)}.json", settings)
        files["Dockerfile"] = _dockerfile()
        files[".env.example"] = _env_example(settings)
    written = []
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written

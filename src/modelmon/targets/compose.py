"""The docker-compose target: the services (app, receiver, Prometheus, Alertmanager, Grafana),
the app's Dockerfile, Grafana's provisioning and the `.env` example.
"""

from __future__ import annotations

from typing import Any

from modelmon.rules.render import dump_yaml
from modelmon.settings import Settings
from modelmon.targets.container import APP_IMAGE, CONTAINER_DATA, CONTAINER_LOG
from modelmon.targets.dashboards import DATASOURCE_UID
from modelmon.targets.layout import ALERTMANAGER, APP, GRAFANA, PROMETHEUS, RECEIVER, WEBHOOK_EXAMPLE, Part

# Pinned images for the compose stack (Grafana matches the SDK build the dashboards target).
IMAGES = {
    "python": "python:3.11.11-slim-bookworm",
    "prometheus": "prom/prometheus:v2.53.4",
    "alertmanager": "prom/alertmanager:v0.27.0",
    "grafana": "grafana/grafana:11.6.0",
}


def grafana_files(settings: Settings) -> dict[str, str]:
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


_WGET = ["CMD", "wget", "-q", "-O", "/dev/null"]


def _published(part: Part, host_port: int | None = None) -> list[str]:
    return [f"{host_port or part.compose_port}:{part.compose_port}"]


def _ready(part: Part) -> list[str]:
    return [*_WGET, f"http://localhost:{part.compose_port}{part.ready_path}"]


def _app_services(model_mount: str) -> dict[str, Any]:
    """The model server and the local Slack stand-in, both from modelmon's image."""
    return {
        "app": {
            "build": {"context": "..", "dockerfile": "deploy/Dockerfile"},
            "image": APP_IMAGE,
            "command": ["modelmon", "serve", "/model", "--host", "0.0.0.0", "--port", str(APP.compose_port),
                        "--prediction-log", f"${{PREDICTION_LOG:-{CONTAINER_LOG}}}"],
            "volumes": [f"{model_mount}:/model:ro", f"prediction-log:{CONTAINER_DATA}"],
            "ports": _published(APP),
            "healthcheck": {
                "test": ["CMD", "python", "-c", "import urllib.request; "
                         f"urllib.request.urlopen('http://127.0.0.1:{APP.compose_port}{APP.ready_path}')"],
                "interval": "10s", "timeout": "3s", "retries": 5, "start_period": "20s",
            },
            "restart": "unless-stopped",
        },
        "receiver": {
            "image": APP_IMAGE,
            "command": ["modelmon", "receive", "--host", "0.0.0.0", "--port", str(RECEIVER.compose_port),
                        "--log", "/data/notifications.jsonl"],
            "volumes": ["receiver-data:/data"],
            "depends_on": ["app"],
            "restart": "unless-stopped",
        },
    }


def _engine_services() -> dict[str, Any]:
    """Prometheus and Alertmanager."""
    return {
        "prometheus": {
            "image": IMAGES["prometheus"],
            "command": [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                "--storage.tsdb.retention.time=15d",
                "--web.enable-lifecycle",
            ],
            "volumes": ["./prometheus:/etc/prometheus:ro", "prometheus-data:/prometheus"],
            "ports": _published(PROMETHEUS),
            "healthcheck": {"test": _ready(PROMETHEUS), "interval": "10s", "retries": 5},
            "depends_on": {"app": {"condition": "service_healthy"}},
            "restart": "unless-stopped",
        },
        "alertmanager": {
            "image": IMAGES["alertmanager"],
            "command": ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
            "volumes": ["./alertmanager:/etc/alertmanager:ro", "alertmanager-data:/alertmanager"],
            "secrets": ["slack_webhook_url"],
            "ports": _published(ALERTMANAGER),
            "healthcheck": {"test": _ready(ALERTMANAGER), "interval": "10s", "retries": 5},
            "restart": "unless-stopped",
        },
    }


def _grafana_service(dashboard_file: str, settings: Settings) -> dict[str, Any]:
    return {
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
        "ports": _published(GRAFANA, settings.grafana_port),
        "healthcheck": {"test": _ready(GRAFANA), "interval": "10s", "retries": 5},
        "depends_on": {"prometheus": {"condition": "service_healthy"}},
        "restart": "unless-stopped",
    }


def compose_file(model_mount: str, dashboard_file: str, settings: Settings) -> str:
    compose = {
        "services": {
            **_app_services(model_mount),
            **_engine_services(),
            "grafana": _grafana_service(dashboard_file, settings),
        },
        "secrets": {"slack_webhook_url": {"file": f"${{SLACK_WEBHOOK_URL_FILE:-./{WEBHOOK_EXAMPLE}}}"}},
        "volumes": {"prometheus-data": {}, "alertmanager-data": {}, "grafana-data": {}, "receiver-data": {},
                    "prediction-log": {}},
    }
    return dump_yaml(compose)


def app_dockerfile() -> str:
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


def env_example(settings: Settings) -> str:
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

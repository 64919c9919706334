"""Alertmanager configuration: routing by severity to Slack, with readable messages.

The Slack webhook URL is never written into the config: Alertmanager reads it from a file
(`api_url_file`), which the native demo points at the local receiver and production at a secret.
"""

from __future__ import annotations

from typing import Any

from modelmon.rules.files import dump_yaml
from modelmon.settings import Settings
from modelmon.simulate.receiver import FIRING_FIELD, GROUP_BY, STATUS_FIELD

TEMPLATE_FILE = "modelmon.tmpl"

# Go templates rendered by Alertmanager; the title names the alert and the model, the text
# carries each alert's summary, description (with its value) and dashboard link. A config
# file loads them as named templates; an AlertmanagerConfig object (Kubernetes) inlines them.
SLACK_TITLE = ('[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] '
               "{{ .CommonLabels.alertname }} - model {{ .CommonLabels.model }}")
SLACK_TEXT = """\
{{ range .Alerts -}}
*{{ .Annotations.summary }}*
{{ .Annotations.description }}
severity: {{ .Labels.severity }} | started: {{ .StartsAt.Format "15:04:05 MST" }} | <{{ .Annotations.dashboard }}|dashboard>
{{ end -}}"""
SLACK_TEMPLATES = f"""\
{{{{ define "modelmon.slack.title" -}}}}
{SLACK_TITLE}
{{{{- end }}}}

{{{{ define "modelmon.slack.text" -}}}}
{SLACK_TEXT}
{{{{- end }}}}
"""


def _slack(settings: Settings, color: str) -> dict[str, Any]:
    return {
        "api_url_file": settings.slack_webhook_file,
        "channel": settings.slack_channel,
        "send_resolved": True,
        "username": "modelmon",
        "title": '{{ template "modelmon.slack.title" . }}',
        "text": '{{ template "modelmon.slack.text" . }}',
        "color": f'{{{{ if eq .Status "firing" }}}}{color}{{{{ else }}}}good{{{{ end }}}}',
        "fields": slack_fields(),
    }


def slack_fields() -> list[dict[str, Any]]:
    """The Slack message's fields, which the local receiver reads back as data."""
    return [
        *({"title": label, "value": f"{{{{ .CommonLabels.{label} }}}}", "short": True} for label in GROUP_BY),
        {"title": STATUS_FIELD, "value": "{{ .Status }}", "short": True},
        {"title": FIRING_FIELD, "value": "{{ .Alerts.Firing | len }}", "short": True},
    ]


def alertmanager_config(settings: Settings) -> str:
    config = {
        "global": {"resolve_timeout": "5m"},
        "templates": [f"templates/{TEMPLATE_FILE}"],
        "route": {
            "receiver": "slack-warning",
            "group_by": list(GROUP_BY),
            "group_wait": settings.group_wait,
            "group_interval": settings.group_interval,
            "repeat_interval": settings.repeat_interval,
            "routes": [{"receiver": "slack-critical", "matchers": ['severity="critical"']}],
        },
        "inhibit_rules": [{
            # A server that is down also looks like silence everywhere else: page once.
            "source_matchers": ['alertname="ModelServerDown"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["model"],
        }],
        "receivers": [
            {"name": "slack-critical", "slack_configs": [_slack(settings, "danger")]},
            {"name": "slack-warning", "slack_configs": [_slack(settings, "warning")]},
        ],
    }
    return dump_yaml(config)

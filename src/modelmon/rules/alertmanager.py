"""Alertmanager routing as data: receivers by severity, grouping, the ServerDown inhibition and
the Slack message, rendered both to `alertmanager.yml` and to a Kubernetes `AlertmanagerConfig`.

The routing is written once, in `ROUTING`; the two renderers only spell it in each format's
keys. The Slack webhook URL is never written into either: Alertmanager reads it from a file
(`api_url_file`, which the native demo points at the local receiver and production at a
secret) or, on Kubernetes, from a Secret.

The Slack message carries the grouping labels, the status and the number of firing alerts as
attachment fields, so a reader (the local receiver, the demo's timeline) gets structured data
instead of parsing a title: `GROUP_BY`, `STATUS_FIELD` and `FIRING_FIELD` are that contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from modelmon.contract import alerts as A
from modelmon.contract.names import MODEL
from modelmon.rules.render import dump_yaml
from modelmon.settings import Settings

__all__ = [
    "FIRING_FIELD", "GROUP_BY", "ROUTING", "SLACK_TEMPLATES", "SLACK_TEXT", "SLACK_TITLE", "STATUS_FIELD",
    "TEMPLATE_FILE", "Matcher", "Receiver", "Routing", "alertmanager_config", "alertmanager_config_spec",
    "slack_fields",
]

GROUP_BY: Final = ("alertname", MODEL)
STATUS_FIELD: Final = "status"
FIRING_FIELD: Final = "firing"
TEMPLATE_FILE: Final = "modelmon.tmpl"

# Go templates rendered by Alertmanager; the title names the alert and the model, the text
# carries each alert's summary, description (with its value) and dashboard link. A config
# file loads them as named templates; an AlertmanagerConfig object (Kubernetes) inlines them.
SLACK_TITLE: Final = ('[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] '
                      "{{ .CommonLabels.alertname }} - model {{ .CommonLabels.model }}")
SLACK_TEXT: Final = """\
{{ range .Alerts -}}
*{{ .Annotations.summary }}*
{{ .Annotations.description }}
severity: {{ .Labels.severity }} | started: {{ .StartsAt.Format "15:04:05 MST" }} | <{{ .Annotations.dashboard }}|dashboard>
{{ end -}}"""
SLACK_TEMPLATES: Final = f"""\
{{{{ define "modelmon.slack.title" -}}}}
{SLACK_TITLE}
{{{{- end }}}}

{{{{ define "modelmon.slack.text" -}}}}
{SLACK_TEXT}
{{{{- end }}}}
"""


@dataclass(frozen=True)
class Matcher:
    """An equality matcher on one label."""

    name: str
    value: str

    def text(self) -> str:
        return f'{self.name}="{self.value}"'

    def object(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value, "matchType": "="}


@dataclass(frozen=True)
class Receiver:
    """A Slack receiver; `color` is the attachment's colour while the alerts fire."""

    name: str
    color: str


@dataclass(frozen=True)
class Routing:
    receivers: tuple[Receiver, ...]
    default: str  # the receiver of whatever no sub-route takes
    routes: tuple[tuple[Matcher, str], ...]  # (matcher, receiver), first match wins
    # An alert that makes the others noise: while the source fires, matching targets of the same
    # model are not sent.
    inhibit_source: Matcher
    inhibit_target: Matcher
    inhibit_equal: tuple[str, ...]


ROUTING: Final = Routing(
    receivers=(Receiver("slack-critical", "danger"), Receiver("slack-warning", "warning")),
    default="slack-warning",
    routes=((Matcher("severity", "critical"), "slack-critical"),),
    # A server that is down also looks like silence everywhere else: page once.
    inhibit_source=Matcher("alertname", A.SERVER_DOWN),
    inhibit_target=Matcher("severity", "warning"),
    inhibit_equal=(MODEL,),
)


def slack_fields() -> list[dict[str, Any]]:
    """The Slack message's fields, which the local receiver reads back as data."""
    return [
        *({"title": label, "value": f"{{{{ .CommonLabels.{label} }}}}", "short": True} for label in GROUP_BY),
        {"title": STATUS_FIELD, "value": "{{ .Status }}", "short": True},
        {"title": FIRING_FIELD, "value": "{{ .Alerts.Firing | len }}", "short": True},
    ]


def _color(receiver: Receiver) -> str:
    return f'{{{{ if eq .Status "firing" }}}}{receiver.color}{{{{ else }}}}good{{{{ end }}}}'


def alertmanager_config(settings: Settings) -> str:
    """`alertmanager.yml`: the routing, with the Slack templates loaded from `templates/`."""

    def slack(receiver: Receiver) -> dict[str, Any]:
        return {
            "api_url_file": settings.slack_webhook_file,
            "channel": settings.slack_channel,
            "send_resolved": True,
            "username": "modelmon",
            "title": '{{ template "modelmon.slack.title" . }}',
            "text": '{{ template "modelmon.slack.text" . }}',
            "color": _color(receiver),
            "fields": slack_fields(),
        }

    config = {
        "global": {"resolve_timeout": "5m"},
        "templates": [f"templates/{TEMPLATE_FILE}"],
        "route": {
            "receiver": ROUTING.default,
            "group_by": list(GROUP_BY),
            "group_wait": settings.group_wait,
            "group_interval": settings.group_interval,
            "repeat_interval": settings.repeat_interval,
            "routes": [{"receiver": receiver, "matchers": [matcher.text()]} for matcher, receiver in ROUTING.routes],
        },
        "inhibit_rules": [{
            "source_matchers": [ROUTING.inhibit_source.text()],
            "target_matchers": [ROUTING.inhibit_target.text()],
            "equal": list(ROUTING.inhibit_equal),
        }],
        "receivers": [{"name": r.name, "slack_configs": [slack(r)]} for r in ROUTING.receivers],
    }
    return dump_yaml(config)


def alertmanager_config_spec(settings: Settings, model: str, secret: tuple[str, str]) -> dict[str, Any]:
    """The `spec` of a Kubernetes `AlertmanagerConfig` for one model: the same routing, matched to
    the model's alerts, with the templates inlined and the webhook URL read from `secret`
    (name, key)."""

    def slack(receiver: Receiver) -> dict[str, Any]:
        return {
            "apiURL": {"name": secret[0], "key": secret[1]},
            "channel": settings.slack_channel,
            "sendResolved": True,
            "username": "modelmon",
            "title": SLACK_TITLE,
            "text": SLACK_TEXT,
            "color": _color(receiver),
            "fields": slack_fields(),
        }

    return {
        "route": {
            "receiver": ROUTING.default,
            "groupBy": list(GROUP_BY),
            "groupWait": settings.group_wait,
            "groupInterval": settings.group_interval,
            "repeatInterval": settings.repeat_interval,
            "matchers": [Matcher(MODEL, model).object()],
            "routes": [{"receiver": receiver, "matchers": [matcher.object()]} for matcher, receiver in ROUTING.routes],
        },
        "inhibitRules": [{
            "sourceMatch": [ROUTING.inhibit_source.object()],
            "targetMatch": [ROUTING.inhibit_target.object()],
            "equal": list(ROUTING.inhibit_equal),
        }],
        "receivers": [{"name": r.name, "slackConfigs": [slack(r)]} for r in ROUTING.receivers],
    }

"""Prometheus recording and alerting rules, generated from the profile and the settings.

Every ratio and drift statistic is computed from counters summed over instances *before*
dividing, so N replicas or workers give the same answer as one. Recorded series follow
`level:metric:operation`; `Names` is the one place their names are spelt, for the rules,
their tests and the dashboards alike.
"""

from __future__ import annotations

from modelmon.model.reference import ReferenceProfile
from modelmon.rules.alerts import alerts, dashboard_uid
from modelmon.rules.recording import recording_rules
from modelmon.rules.render import YamlDumper, dump_yaml, represent_str
from modelmon.settings import Settings


def group_names(profile: ReferenceProfile) -> tuple[str, str]:
    """The recording group and the alert group, evaluated in this order."""
    return f"modelmon-{profile.model}-recording", f"modelmon-{profile.model}-alerts"


def rule_files(profile: ReferenceProfile, settings: Settings) -> dict[str, str]:
    """File name -> YAML text, for prometheus/rules/."""
    url = f"{settings.grafana_url}/d/{dashboard_uid(profile)}"
    recording = {"groups": [{
        "name": group_names(profile)[0],
        "interval": settings.evaluation_interval,
        "rules": recording_rules(profile, settings),
    }]}
    alerting = {"groups": [{
        "name": group_names(profile)[1],
        "interval": settings.evaluation_interval,
        "rules": [a.rule(url) for a in alerts(profile, settings)],
    }]}
    return {"recording.yml": dump_yaml(recording), "alerts.yml": dump_yaml(alerting)}


YamlDumper.add_representer(str, represent_str)

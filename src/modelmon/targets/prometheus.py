"""Prometheus' configuration for a stack (scrape jobs, rule files, Alertmanager, remote write
from each shard) and the command lines of VictoriaMetrics and vmalert in a fleet.
"""

from __future__ import annotations

from modelmon.rules.render import dump_yaml
from modelmon.rules.series import JOB
from modelmon.settings import Settings, seconds
from modelmon.targets.layout import (
    ALERTMANAGER,
    APP,
    PROMETHEUS,
    VICTORIA_METRICS,
    VMALERT,
    Instance,
    Layout,
    Part,
    Topology,
    scraped_by,
)


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

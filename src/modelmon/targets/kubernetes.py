"""The stack as a kustomize base for Kubernetes with the Prometheus Operator (kube-prometheus-stack).

The same profile and settings as every other target render it, and the same rule groups,
Slack message and dashboard go into it: a `PrometheusRule` carries exactly the groups of
`prometheus/rules/`, an `AlertmanagerConfig` the Slack route of `alertmanager.yml`, and the
dashboard JSON is the very file Grafana provisions under Compose, turned into a ConfigMap
that Grafana's sidecar picks up by its `grafana_dashboard: "1"` label.

Decisions, and why:

- **The model reaches the pod inside an image** (`Dockerfile.model`: the modelmon image plus
  the model directory at /model). A model version, its reference profile and the rules
  rendered from it then roll out and roll back together, and a pod needs no volume that has
  to be filled before it can start. A volume (`/model`, read-only) works too: replace the
  image and mount one; the Deployment already reads /model.
- **One worker per pod.** Kubernetes scales pods (the HorizontalPodAutoscaler), and each pod is
  one scrape target, so the counters add up across replicas in PromQL as they do across
  hosts; several workers per pod would need prometheus_client's multiprocess directory and
  would hide a worker's death behind its siblings. Resources are the measured ones
  (BENCHMARKS.md, "Memory by model kind" and "Serving speed": one worker keeps about one
  core busy at full load and stays well under 512 MiB).
- **/metrics on its own port** (`metrics_port`), which the NetworkPolicy opens to the
  monitoring namespace only; the API port stays open to clients.
- **The prediction log** is SQLite on an emptyDir: per pod, lost with it. Labels sent back
  through the Service reach any replica, so with more than one replica patch
  `MODELMON_PREDICTION_LOG` to a PostgreSQL URL (from a Secret of yours, README).
"""

from __future__ import annotations

from typing import Any

import yaml

from modelmon import __version__
from modelmon.model.reference import ReferenceProfile
from modelmon.rules.alertmanager import alertmanager_config_spec
from modelmon.rules.alerts import dashboard_uid
from modelmon.rules.files import rule_files
from modelmon.rules.render import dump_yaml
from modelmon.rules.series import JOB
from modelmon.settings import Settings
from modelmon.targets.container import APP_IMAGE, CONTAINER_DATA, CONTAINER_LOG, CONTAINER_PORT

HTTP_PORT = CONTAINER_PORT
METRICS_PORT = 9100
# Labels every object carries; the selector labels pick this model's pods.
PART_OF = "app.kubernetes.io/part-of"
JOB_LABEL = "modelmon.dev/job"  # the Service label the ServiceMonitor turns into `job`
SLACK_SECRET = ("modelmon-slack", "url")  # Secret name and key holding the Slack webhook URL
# Measured (BENCHMARKS.md): one worker saturates about a core; resident memory stays under
# 300 MiB for the model kinds measured, so the limit leaves room for batches.
RESOURCES = {"requests": {"cpu": "250m", "memory": "320Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
FILES = ("kustomization.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "networkpolicy.yaml",
         "servicemonitor.yaml", "prometheusrule.yaml", "alertmanagerconfig.yaml")


def _name(profile: ReferenceProfile) -> str:
    """A DNS-1123 name for this model's objects."""
    cleaned = "".join(c if c.isalnum() else "-" for c in profile.model.lower()).strip("-")
    return f"modelmon-{cleaned}"[:63].rstrip("-")


def _labels(profile: ReferenceProfile) -> dict[str, str]:
    return {"app.kubernetes.io/name": "modelmon", "app.kubernetes.io/instance": _name(profile), PART_OF: "modelmon"}


def _selector(profile: ReferenceProfile) -> dict[str, str]:
    return {"app.kubernetes.io/name": "modelmon", "app.kubernetes.io/instance": _name(profile)}


def _metadata(profile: ReferenceProfile, **extra: str) -> dict[str, Any]:
    return {"name": _name(profile), "labels": {**_labels(profile), **extra}}


def _deployment(profile: ReferenceProfile, settings: Settings, image: str) -> dict[str, Any]:
    probe = {"periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(profile),
        "spec": {
            "replicas": settings.kubernetes_min_replicas,
            "revisionHistoryLimit": 5,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": _selector(profile)},
            "template": {
                "metadata": {"labels": _labels(profile)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                        "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "app",
                        "image": image,
                        "args": ["modelmon", "serve", "/model", "--host", "0.0.0.0", "--port", str(HTTP_PORT),
                                 "--metrics-port", str(METRICS_PORT), "--workers", "1"],
                        "env": [{"name": "MODELMON_PREDICTION_LOG", "value": CONTAINER_LOG}],
                        "ports": [{"name": "http", "containerPort": HTTP_PORT},
                                  {"name": "metrics", "containerPort": METRICS_PORT}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, **probe},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 10,
                                          **probe},
                        "resources": RESOURCES,
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "data", "mountPath": CONTAINER_DATA},
                                         {"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def _service(profile: ReferenceProfile) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(profile, **{JOB_LABEL: JOB}),
        "spec": {
            "selector": _selector(profile),
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http"},
                      {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
        },
    }


def _autoscaler(profile: ReferenceProfile, settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(profile),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": _name(profile)},
            "minReplicas": settings.kubernetes_min_replicas,
            "maxReplicas": settings.kubernetes_max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    }


def _disruption_budget(profile: ReferenceProfile) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(profile),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": _selector(profile)}},
    }


def _network_policy(profile: ReferenceProfile, settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(profile),
        "spec": {
            "podSelector": {"matchLabels": _selector(profile)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"ports": [{"protocol": "TCP", "port": HTTP_PORT}]},
                {"from": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": settings.kubernetes_monitoring_namespace}}}],
                 "ports": [{"protocol": "TCP", "port": METRICS_PORT}]},
            ],
        },
    }


def _release(settings: Settings) -> dict[str, str]:
    return {"release": settings.kubernetes_release}


def _service_monitor(profile: ReferenceProfile, settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(profile, **_release(settings)),
        "spec": {
            "jobLabel": JOB_LABEL,
            "selector": {"matchLabels": _selector(profile)},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": settings.scrape_interval}],
        },
    }


def _prometheus_rule(profile: ReferenceProfile, settings: Settings) -> dict[str, Any]:
    groups = [g for text in rule_files(profile, settings).values() for g in yaml.safe_load(text)["groups"]]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _metadata(profile, **_release(settings)),
        "spec": {"groups": groups},
    }


def _alertmanager_config(profile: ReferenceProfile, settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "AlertmanagerConfig",
        "metadata": _metadata(profile, **_release(settings)),
        "spec": alertmanager_config_spec(settings, profile.model, SLACK_SECRET),
    }


def _kustomization(profile: ReferenceProfile, settings: Settings, dashboard_file: str) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": settings.kubernetes_namespace,
        "resources": list(FILES[1:]),
        "generatorOptions": {"disableNameSuffixHash": True, "labels": DASHBOARD_LABEL},
        "configMapGenerator": [{"name": f"{_name(profile)}-dashboard", "files": [dashboard_file]}],
    }


def image_of(profile: ReferenceProfile) -> str:
    return f"{_name(profile)}:{__version__}"


def model_dockerfile(model_path: str) -> str:
    """The model image: modelmon's own plus the model directory (`model_path`, relative to the
    build context: the folder above the rendered one)."""
    return f"""\
# The model's image: modelmon (deploy/Dockerfile, tagged {APP_IMAGE}) plus the model at /model.
# From the folder `modelmon stack render` ran in: docker build -f <this file> -t <registry>/<name>:<tag> .
FROM {APP_IMAGE}
COPY --chown=10001:10001 {model_path} /model
"""


def kubernetes_files(profile: ReferenceProfile, settings: Settings, dashboard: str, model_path: str
                     ) -> dict[str, str]:
    """File name -> text of the kustomize base (the dashboard JSON among them)."""
    dashboard_file = f"{dashboard_uid(profile)}.json"
    objects = {
        "deployment.yaml": _deployment(profile, settings, image_of(profile)),
        "service.yaml": _service(profile),
        "hpa.yaml": _autoscaler(profile, settings),
        "pdb.yaml": _disruption_budget(profile),
        "networkpolicy.yaml": _network_policy(profile, settings),
        "servicemonitor.yaml": _service_monitor(profile, settings),
        "prometheusrule.yaml": _prometheus_rule(profile, settings),
        "alertmanagerconfig.yaml": _alertmanager_config(profile, settings),
    }
    files = {"kustomization.yaml": dump_yaml(_kustomization(profile, settings, dashboard_file))}
    files.update({name: dump_yaml(body) for name, body in objects.items()})
    files[dashboard_file] = dashboard
    files["Dockerfile.model"] = model_dockerfile(model_path)
    return files

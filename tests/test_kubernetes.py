"""The kustomize base, validated without a cluster: core objects against Kubernetes' OpenAPI
schemas (kubernetes-validate, pinned version), the Prometheus Operator's objects against its
CRDs (typed models, round-tripped so an unknown field fails), the rule groups against the
ones promtool tests, and `kubectl kustomize` where kubectl exists."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import cloudcoil.models.prometheus_operator.v1 as operator
import cloudcoil.models.prometheus_operator.v1alpha1 as operator_alpha
import kubernetes_validate
import pytest
import yaml

from modelmon.cli import main
from modelmon.targets.kubernetes import METRICS_PORT

from .conftest import REPO

KUBERNETES = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes still supported upstream as of this writing
CORE = ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "networkpolicy.yaml")
OPERATOR = {"servicemonitor.yaml": operator.ServiceMonitor, "prometheusrule.yaml": operator.PrometheusRule,
            "alertmanagerconfig.yaml": operator_alpha.AlertmanagerConfig}


class _GoYaml(yaml.SafeLoader):
    """kustomize writes `matchType: =` unquoted: a plain string to Go's YAML, YAML 1.1's `value` tag to PyYAML."""


_GoYaml.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def _load(name: str) -> dict:
    return yaml.safe_load((KUBERNETES / name).read_text())


def _round_trip(kind: type, body: dict) -> dict:
    dumped: dict = kind.model_validate(body).model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


@pytest.mark.parametrize("name", CORE)
def test_core_objects_follow_the_kubernetes_schema(name):
    kubernetes_validate.validate(_load(name), KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", sorted(OPERATOR))
def test_operator_objects_follow_their_crds(name):
    body = _load(name)
    assert _round_trip(OPERATOR[name], body) == body


def test_a_misspelt_field_fails_both_checks():
    deployment = copy.deepcopy(_load("deployment.yaml"))
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    monitor = copy.deepcopy(_load("servicemonitor.yaml"))
    monitor["spec"]["endpoints"][0]["intervall"] = "5s"
    assert _round_trip(OPERATOR["servicemonitor.yaml"], monitor) != monitor


def test_the_prometheus_rule_carries_exactly_the_tested_groups():
    """The groups `promtool test rules` runs against under deploy/prometheus/ (test_stack.py)."""
    tested = [g for name in ("recording.yml", "alerts.yml")
              for g in yaml.safe_load((REPO / "deploy" / "prometheus" / "rules" / name).read_text())["groups"]]
    assert _load("prometheusrule.yaml")["spec"]["groups"] == tested


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_the_prometheus_rule_groups_pass_promtool_check(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": _load("prometheusrule.yaml")["spec"]["groups"]}))
    done = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_selectors_ports_and_labels_fit_together():
    deployment, service, monitor = _load("deployment.yaml"), _load("service.yaml"), _load("servicemonitor.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "modelmon"  # the rules' `job`
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    for kind in ("servicemonitor.yaml", "prometheusrule.yaml", "alertmanagerconfig.yaml"):
        assert _load(kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["args"][container["args"].index("--metrics-port") + 1] == str(METRICS_PORT)


def test_only_the_monitoring_namespace_reaches_the_metrics_port():
    ingress = _load("networkpolicy.yaml")["spec"]["ingress"]
    metrics = [rule for rule in ingress if any(p["port"] == METRICS_PORT for p in rule["ports"])]
    assert metrics == [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                        "ports": [{"protocol": "TCP", "port": METRICS_PORT}]}]
    assert all("from" in rule for rule in metrics)


def test_the_slack_webhook_comes_from_a_secret_key():
    spec = _load("alertmanagerconfig.yaml")["spec"]
    for receiver in spec["receivers"]:
        assert receiver["slackConfigs"][0]["apiURL"] == {"name": "modelmon-slack", "key": "url"}
    assert "hooks.slack.com" not in (KUBERNETES / "alertmanagerconfig.yaml").read_text()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds_the_base_with_the_compose_dashboard_for_the_sidecar():
    done = subprocess.run(["kubectl", "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    objects = list(yaml.load_all(done.stdout, Loader=_GoYaml))
    assert {o["kind"] for o in objects} == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
                                            "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor",
                                            "PrometheusRule", "AlertmanagerConfig"}
    assert {o["metadata"]["namespace"] for o in objects} == {"modelmon"}
    dashboard = next(o for o in objects if o["kind"] == "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    compose = (REPO / "deploy" / "grafana" / "dashboards" / "modelmon-stores.json").read_text()
    assert json.loads(dashboard["data"]["modelmon-stores.json"]) == json.loads(compose)


def test_a_malformed_setting_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    out = tmp_path / "k8s"
    monkeypatch.setenv("MODELMON_KUBERNETES_NAMESPACE", "Model_Mon")
    assert main(["stack", "render", "--target", "kubernetes", "--out", str(out)]) == 2
    assert "kubernetes_namespace" in capsys.readouterr().err
    assert not out.exists()

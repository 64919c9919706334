"""The rendered stack validates with the real tools, and deploy/ is what `stack render` writes."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess

import pytest
import yaml

from modelmon.cli import main
from modelmon.settings import load_settings
from modelmon.targets.stack import render_stack

from .conftest import REPO, STORES_DIR

DEPLOY = REPO / "deploy"


def run(*argv: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, timeout=120,
                          env={**os.environ, **(env or {})})


def test_committed_deploy_is_up_to_date(tmp_path):
    out = tmp_path / "deploy"
    assert main(["stack", "render", "--model", str(STORES_DIR), "--out", str(out)]) == 0
    assert main(["stack", "render", "--target", "kubernetes", "--model", str(STORES_DIR),
                 "--out", str(out / "kubernetes")]) == 0
    # The model image copies the model relative to where `render` ran: the repo, as `make deploy` runs it.
    dockerfile = out / "kubernetes" / "Dockerfile.model"
    dockerfile.write_text(dockerfile.read_text().replace(os.path.relpath(STORES_DIR), "models/stores"))
    # The model is mounted relative to the compose file: same path as in the repo.
    compose = (out / "docker-compose.yaml").read_text().replace(os.path.relpath(STORES_DIR, out), "../models/stores")
    (out / "docker-compose.yaml").write_text(compose)
    rendered = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(DEPLOY) for p in DEPLOY.rglob("*") if p.is_file() and p.name != ".env")
    assert rendered == committed, "deploy/ has other files than `make deploy` writes: run it"
    stale = [str(p) for p in rendered if not filecmp.cmp(out / p, DEPLOY / p, shallow=False)]
    assert not stale, f"deploy/ is stale in {stale}: run `make deploy` and commit it"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_prometheus_config_is_valid():
    result = run("promtool", "check", "config", "prometheus/prometheus.yml", cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "5s"
    assert {j["job_name"] for j in config["scrape_configs"]} == {"modelmon", "prometheus", "alertmanager"}


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed")
def test_alertmanager_config_is_valid_and_keeps_the_webhook_out():
    result = run("amtool", "check-config", "alertmanager/alertmanager.yml", cwd=DEPLOY)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    slack = [c for r in config["receivers"] for c in r.get("slack_configs", [])]
    assert slack and all(c["api_url_file"] == "/run/secrets/slack_webhook_url" and "api_url" not in c for c in slack)
    assert config["route"]["routes"][0]["matchers"] == ['severity="critical"']
    assert "hooks.slack.com" not in "".join(p.read_text() for p in DEPLOY.rglob("*") if p.is_file())


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_is_valid_and_needs_a_grafana_password(tmp_path):
    ok = run("docker-compose", "-f", "docker-compose.yaml", "config", "-q", cwd=DEPLOY,
             env={"GRAFANA_ADMIN_USER": "admin", "GRAFANA_ADMIN_PASSWORD": "s3cret"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}
    refused = subprocess.run(["docker-compose", "-f", "docker-compose.yaml", "config", "-q"], cwd=DEPLOY,
                             capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in refused.stderr + refused.stdout
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    for service in ("prometheus", "alertmanager", "grafana"):
        assert ":" in compose["services"][service]["image"] and not compose["services"][service]["image"].endswith(":latest")
        assert "healthcheck" in compose["services"][service]
    assert "prometheus-data:/prometheus" in compose["services"]["prometheus"]["volumes"]


def test_demo_profile_flags_its_workshop_login(tmp_path, stores_profile):
    render_stack(stores_profile, load_settings("demo"), tmp_path, model_dir=STORES_DIR)
    env = (tmp_path / ".env.example").read_text()
    assert "GRAFANA_ADMIN_PASSWORD=mlreply" in env and "DEMO ONLY" in env
    assert "mlreply" not in (DEPLOY / ".env.example").read_text()


def test_slack_webhook_file_setting_is_honoured(tmp_path, stores_profile):
    """MODELMON_SLACK_WEBHOOK_FILE was accepted, then overwritten by the stack's default."""
    mine = "/etc/modelmon/slack-url"
    for topology in ("compose", "native"):
        settings = load_settings("production", env={"MODELMON_SLACK_WEBHOOK_FILE": mine})
        layout = render_stack(stores_profile, settings, tmp_path / topology, topology=topology,
                              model_dir=STORES_DIR).layout
        config = yaml.safe_load(layout.alertmanager_config.read_text())
        assert {c["api_url_file"] for r in config["receivers"] for c in r["slack_configs"]} == {mine}
    default = render_stack(stores_profile, load_settings("production", env={}), tmp_path / "default",
                           topology="native").layout
    config = yaml.safe_load(default.alertmanager_config.read_text())
    assert {c["api_url_file"] for r in config["receivers"] for c in r["slack_configs"]} == {
        str(default.webhook_secret.resolve())}


def _fleet(tmp_path, stores_profile, **changes):
    settings = load_settings("demo").replace(replicas=4, shards=2, **changes)
    layout = render_stack(stores_profile, settings, tmp_path, topology="native").layout
    configs = {name: yaml.safe_load((layout.root / "prometheus" / f"{name}.yml").read_text())
               for name in ("prometheus-1", "prometheus-2")}
    return settings, layout, configs


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_a_fleet_shares_the_replicas_out_and_writes_to_one_store(tmp_path, stores_profile):
    settings, layout, configs = _fleet(tmp_path, stores_profile)
    targets = {name: c["scrape_configs"][0]["static_configs"][0]["targets"] for name, c in configs.items()}
    ports = [settings.app_port + i for i in range(4)]
    assert targets == {"prometheus-1": [f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[2]}"],
                       "prometheus-2": [f"127.0.0.1:{ports[1]}", f"127.0.0.1:{ports[3]}"]}
    for index, (name, config) in enumerate(configs.items()):
        assert config["global"]["external_labels"]["cluster"] == f"cluster-{index + 1}"
        assert config["remote_write"][0]["url"] == f"http://127.0.0.1:{settings.victoria_metrics_port}/api/v1/write"
        # Globally evaluated rules run in vmalert only: a shard has none and notifies no one.
        assert "rule_files" not in config and "alerting" not in config
        result = run("promtool", "check", "config", str(layout.root / "prometheus" / f"{name}.yml"))
        assert result.returncode == 0, result.stdout + result.stderr
    assert not (layout.root / "prometheus" / "prometheus.yml").exists()


def test_rules_evaluated_per_cluster_run_in_every_shard_and_never_in_vmalert(tmp_path, stores_profile):
    from modelmon.targets.layout import VMALERT, native_instances

    settings, _, configs = _fleet(tmp_path, stores_profile, rule_evaluation="cluster")
    for config in configs.values():
        assert config["rule_files"] == ["rules/*.yml"]
        assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
            f"127.0.0.1:{settings.alertmanager_port}"]
    assert VMALERT not in {i.part for i in native_instances(settings)}
    assert VMALERT in {i.part for i in native_instances(settings.replace(rule_evaluation="global"))}


def test_a_fleet_whose_ports_collide_is_refused_naming_both(stores_profile):
    from modelmon.settings import SettingsError
    from modelmon.targets.layout import native_instances

    with pytest.raises(SettingsError, match="prometheus-1 and app-3 would both listen on port 9002"):
        native_instances(load_settings("demo").replace(replicas=4, shards=2, app_port=9000, prometheus_port=9002))
    with pytest.raises(SettingsError, match="rule_evaluation must be one of global, cluster"):
        load_settings("demo").replace(rule_evaluation="both")


@pytest.mark.skipif(shutil.which("vmalert") is None, reason="vmalert not installed")
def test_vmalert_accepts_the_generated_rules(tmp_path, stores_profile):
    _, layout, _ = _fleet(tmp_path, stores_profile)
    result = run("vmalert", f"-rule={layout.rules}/*.yml", "-dryRun", "-datasource.url=http://127.0.0.1:1")
    assert result.returncode == 0, result.stdout + result.stderr

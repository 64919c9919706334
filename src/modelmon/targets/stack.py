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

from modelmon.contract.routes import SLACK_PATH
from modelmon.model.reference import ReferenceProfile
from modelmon.rules.alertmanager import SLACK_TEMPLATES, TEMPLATE_FILE, alertmanager_config
from modelmon.rules.files import rule_files
from modelmon.ruletests.suite import rule_tests
from modelmon.settings import Settings, settings_yaml
from modelmon.targets.compose import app_dockerfile, compose_file, env_example, grafana_files
from modelmon.targets.dashboards import dashboard_json
from modelmon.targets.kubernetes import kubernetes_files
from modelmon.targets.layout import COMPOSE_SECRET, RECEIVER, Layout, Topology, layout_of, shards
from modelmon.targets.prometheus import prometheus_config


@dataclass(frozen=True)
class RenderedStack:
    layout: Layout
    files: tuple[Path, ...]


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
                      for name, text in grafana_files(settings).items()})
        files[rel(layout.webhook_example)] = f"http://{RECEIVER.address(settings, topology)}{SLACK_PATH}\n"
        files[rel(layout.compose)] = compose_file(mount, layout.dashboard.name, settings)
        files["Dockerfile"] = app_dockerfile()
        files[".env.example"] = env_example(settings)
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

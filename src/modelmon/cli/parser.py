"""The `modelmon` command line: its verbs and options. An option that overrides a setting is
generated from the setting's field (type, choices, help, defaults written once, in settings.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelmon.cli.commands import (
    DEFAULT_DATA,
    DEFAULT_MODEL,
    FLEET_FLAGS,
    cmd_backtest,
    cmd_collect,
    cmd_data_explore,
    cmd_data_generate,
    cmd_demo,
    cmd_profile,
    cmd_receive,
    cmd_report,
    cmd_serve,
    cmd_simulate,
    cmd_stack_render,
    cmd_train,
    cmd_up,
)
from modelmon.settings import PROFILES

_MODEL_HELP = "MLflow model directory, or a model URI (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/PATH)"


def _model_arg(text: str) -> str | Path:
    """`--model`: a model URI stays text (resolved when used), anything else is a folder."""
    from modelmon.model.source import is_model_uri

    return text if is_model_uri(text) else Path(text)


def _setting_flag(sub: argparse.ArgumentParser, name: str, flag: str | None = None, metavar: str | None = None
                  ) -> None:
    """An option that overrides the setting `name`: its type, choices, help and defaults are the
    setting's own (settings.py); the option's default is None, so the profile, the settings file
    and MODELMON_* decide unless it is given."""
    from modelmon.settings import setting_doc

    doc = setting_doc(name)
    option = flag or "--" + name.replace("_", "-")
    shown = f"default {doc.default!r}" + ("" if doc.demo is None else f", demo {doc.demo!r}")
    text = f"{doc.doc} (setting {name}; {shown})".replace("%", "%%")
    if doc.kind is bool:
        negated = option if option.startswith("--no-") else "--no-" + option[2:]
        sub.add_argument(negated if doc.default else option, dest=name, action="store_const",
                         const=not doc.default, help=("turn off: " if doc.default else "turn on: ") + text)
        return
    sub.add_argument(option, dest=name, type=doc.kind, choices=doc.choices,
                     metavar=metavar or (None if doc.choices else option[2:].upper().replace("-", "_")), help=text)


def settings_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--profile", choices=PROFILES,
                     help="settings profile: windows, intervals, for durations (default: the settings file's, "
                          "else production)")
    sub.add_argument("--settings", type=Path, help="YAML file overriding settings (MODELMON_* variables too)")


def verb(name: str, handler: Callable[[argparse.Namespace], None], text: str, parent: Any) -> argparse.ArgumentParser:
    """A verb of `parent` (a subparsers action) that runs `handler`."""
    sub: argparse.ArgumentParser = parent.add_parser(name, help=text, description=text)
    sub.set_defaults(handler=handler)
    return sub


def stack_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", type=_model_arg, default=DEFAULT_MODEL,
                     help=_MODEL_HELP + ", with its reference profile (default: %(default)s)")
    settings_options(sub)

def fleet_options(sub: argparse.ArgumentParser) -> None:
    for name in FLEET_FLAGS:
        _setting_flag(sub, name)


def _data_verbs(verbs: Any) -> None:
    """`data generate`, `data explore`."""
    data = verbs.add_parser("data", help="The embedded stores dataset.", description="The embedded stores dataset.")
    data_verbs = data.add_subparsers(dest="data_verb", required=True, metavar="COMMAND")
    gen = verb("generate", cmd_data_generate, "Write the seeded synthetic stores dataset.", data_verbs)
    gen.add_argument("--out", type=Path, default=DEFAULT_DATA, help="CSV to write (default: %(default)s)")
    gen.add_argument("--rows", type=int, default=896, help="rows (default: %(default)s)")
    gen.add_argument("--seed", type=int, default=20240611, help="random seed (default: %(default)s)")

    explore = verb("explore", cmd_data_explore, "Plot each column (histogram, mean marked) and summarise a CSV.",
                   data_verbs)
    explore.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CSV to explore (default: %(default)s)")
    explore.add_argument("--out", type=Path, default=Path("reports/eda"), help="folder (default: %(default)s)")
    explore.add_argument("--target", help="target column, for its class shares (default: guessed)")
    explore.add_argument("--model", type=_model_arg, help="MLflow model directory (or model URI) whose profile's "
                                                           "calibration to picture (reliability diagram, reference quality)")


def _model_verbs(verbs: Any) -> None:
    """`train`, `profile`."""
    train = verb("train", cmd_train, "Train the stores classifier and save it as an MLflow model.", verbs)
    train.add_argument("--data", type=Path, default=DEFAULT_DATA, help="training CSV (default: %(default)s)")
    train.add_argument("--out", type=Path, default=DEFAULT_MODEL, help="model directory (default: %(default)s)")

    prof = verb("profile", cmd_profile, "Build the reference profile of any MLflow model from its training data.", verbs)
    prof.add_argument("--model", type=_model_arg, default=DEFAULT_MODEL,
                      help=_MODEL_HELP + "; for a URI the profile is also logged to the version's run "
                           "(default: %(default)s)")
    prof.add_argument("--data", type=Path, default=DEFAULT_DATA, help="training CSV (default: %(default)s)")
    prof.add_argument("--target", help="target column: actual class shares, a regressor's error, a classifier's "
                      "calibration (optional)")
    prof.add_argument("--calibration-data", type=Path,
                      help="CSV of rows the model was not fitted on, with the target, to calibrate a classifier's "
                           "probabilities (default: a held-out 30%% of --data)")
    prof.add_argument("--out", type=Path, help="profile JSON to write (default: inside the model directory, or its "
                                               "cached copy)")


def _serve_verb(verbs: Any) -> None:
    """`serve`."""
    serve = verb("serve", cmd_serve, "Serve a model over HTTP with Prometheus metrics.", verbs)
    serve.add_argument("model_path", nargs="?", type=_model_arg, metavar="model",
                       help=_MODEL_HELP + f" (default: {DEFAULT_MODEL})")
    serve.add_argument("--model", type=_model_arg, help="the same, as an option")
    serve.add_argument("--reference", type=Path, help="reference profile JSON (default: inside the model directory)")
    settings_options(serve)
    # Each of these overrides the setting of the same name (the README's settings table).
    _setting_flag(serve, "host")
    _setting_flag(serve, "app_port", "--port")
    for name in ("max_batch_rows", "max_body_bytes", "log_level", "workers"):
        _setting_flag(serve, name)
    serve.add_argument("--multiproc-dir", type=Path,
                       help="folder for the workers' metric files, emptied at start (default: a new temp folder)")
    for name in ("batch_rows", "batch_wait_ms", "monitoring", "metrics_port"):
        _setting_flag(serve, name)
    _setting_flag(serve, "prediction_log", metavar="PATH_OR_URL")
    for name in ("log_queue_rows", "log_flush_seconds", "log_retention", "log_max_rows"):
        _setting_flag(serve, name)
    _setting_flag(serve, "follow_alias", metavar="DURATION")


def _stack_verbs(verbs: Any) -> None:
    """`stack render`, `up`."""
    stack = verbs.add_parser("stack", help="The monitoring stack as code.", description="The monitoring stack as code.")
    stack_verbs = stack.add_subparsers(dest="stack_verb", required=True, metavar="COMMAND")
    render = verb("render", cmd_stack_render,
                  "Write Prometheus, Alertmanager, Grafana and docker-compose files for a model.", stack_verbs)
    stack_options(render)
    render.add_argument("--out", type=Path, default=Path("deploy"), help="folder to write (default: %(default)s)")
    render.add_argument("--target", choices=("compose", "native", "kubernetes"), default="compose",
                        help="compose: docker-compose with Grafana; native: one host, as `up` runs it; kubernetes: "
                             "a kustomize base for the Prometheus Operator (default: %(default)s)")
    fleet_options(render)

    up = verb("up", cmd_up, "Run app, Prometheus, Alertmanager and a Slack stand-in natively (no Docker).", verbs)
    stack_options(up)
    up.add_argument("--run-dir", type=Path, help="folder for configs, data and logs (default: runs/<time>)")
    up.add_argument("--collect", action="store_true",
                    help="the app is `modelmon collect` (a model served elsewhere posts its payloads to it)")
    fleet_options(up)


def _traffic_verbs(verbs: Any) -> None:
    """`simulate`, `backtest`, `demo`."""
    sim = verb("simulate", cmd_simulate, "Send scenario traffic (normal and faulty phases) to a model server.", verbs)
    sim.add_argument("scenario", nargs="?", default="normal",
                     help="built-in scenario name or YAML file (default: %(default)s; --list shows them)")
    sim.add_argument("--url", default="http://127.0.0.1:8000",
                     help="model server, or a fleet's replicas separated by commas, sent to in turn "
                          "(default: %(default)s)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    sim.add_argument("--speed", type=float, default=1.0,
                     help="time compression: durations / speed, rates x speed, same requests (default: 1)")
    sim.add_argument("--duration", help="stretch or shrink every phase so the scenario lasts this long, e.g. 2m")
    sim.add_argument("--concurrency", type=int, default=64, help="requests in flight at most (default: %(default)s)")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")

    back = verb("backtest", cmd_backtest,
                "Play a scenario on a simulated clock through the model and the metrics, evaluate the rules over it "
                "with Prometheus, and show when each alert fired and how often it cried wolf.", verbs)
    stack_options(back)
    back.add_argument("scenario", nargs="?", default="normal",
                      help="built-in scenario name or YAML file (default: %(default)s)")
    back.add_argument("--rate", help="every phase at this rate instead of the scenario's, e.g. 100/min")
    back.add_argument("--duration", help="stretch every phase so the scenario lasts this long, e.g. 7d")
    back.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    back.add_argument("--log", help="replay a prediction log (SQLite file or SQLAlchemy URL) instead of a scenario: "
                                    "how these settings would have behaved on the logged traffic and labels")
    back.add_argument("--out", type=Path, help="folder for backtest.json and timeline.png")

    demo = verb("demo", cmd_demo, "Train if needed, start the native stack, send normal then faulty traffic, "
                                   "and show the alerts firing.", verbs)
    stack_options(demo)
    demo.set_defaults(profile="demo")
    demo.add_argument("--data", type=Path, default=DEFAULT_DATA, help="training CSV (default: %(default)s)")
    demo.add_argument("--scenario", default="demo", help="scenario to play (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--run-dir", type=Path, help="folder for configs, data and logs (default: runs/demo-<time>)")
    demo.add_argument("--exit", action="store_true", help="stop the stack at the end instead of waiting for Ctrl-C")


def _report_verb(verbs: Any) -> None:
    """`report`."""
    report = verb("report", cmd_report, "Draw the dashboard's panels from Prometheus into HTML and PNG files.", verbs)
    stack_options(report)
    report.add_argument("--stack", type=Path,
                        help="the stack's folder (rendered stack or run folder), to read its settings from "
                             "(default: the windows of the rules Prometheus runs)")
    report.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus URL (default: %(default)s)")
    report.add_argument("--since", default="15m", help="how far back (default: %(default)s)")
    report.add_argument("--out", type=Path, help="folder to write (default: reports/<time>)")
    report.add_argument("--dashboard", type=Path, help="dashboard JSON to read panels from (default: generated)")
    report.add_argument("--phases", type=Path, help="phases.json of a simulated scenario, drawn as markers")


def _collector_verbs(verbs: Any) -> None:
    """`collect`, `receive`."""
    collect = verb("collect", cmd_collect,
                   "Monitor a model another server answers: KServe's payload logger events, or POST /observe.", verbs)
    collect.add_argument("--model", type=_model_arg, default=DEFAULT_MODEL,
                         help=_MODEL_HELP + ", with its reference profile (default: %(default)s)")
    _setting_flag(collect, "host")
    _setting_flag(collect, "app_port", "--port")
    _setting_flag(collect, "prediction_log", metavar="PATH_OR_URL")
    settings_options(collect)

    receive = verb("receive", cmd_receive, "A local Slack-compatible webhook receiver that logs notifications.", verbs)
    _setting_flag(receive, "host")
    _setting_flag(receive, "receiver_port", "--port")
    receive.add_argument("--log", type=Path, default=Path("notifications.jsonl"),
                         help="JSON-lines file of received notifications (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmon", description="Monitor an MLflow model with Prometheus and Grafana."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for add in (_data_verbs, _model_verbs, _serve_verb, _stack_verbs, _traffic_verbs, _report_verb, _collector_verbs):
        add(verbs)
    return parser

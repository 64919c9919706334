"""What each `modelmon` command does, given its parsed arguments. Each imports what it needs when
it runs, so `modelmon --help` stays quick.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from modelmon.errors import ModelmonError

if TYPE_CHECKING:
    from modelmon.model.loading import LoadedModel
    from modelmon.model.reference import ReferenceProfile
    from modelmon.settings import Settings

DEFAULT_DATA = Path("data/stores.csv")
DEFAULT_MODEL = Path("models/stores")


def _local(model: str | Path) -> Path:
    """The local folder of `--model`: a URI is resolved against MLFLOW_TRACKING_URI and fetched once."""
    from modelmon.model.source import resolve

    return resolve(model)


def cmd_data_generate(args: argparse.Namespace) -> None:
    from modelmon.workshop.data import generate_stores, write_csv

    path = write_csv(generate_stores(rows=args.rows, seed=args.seed), args.out)
    print(f"wrote {path} ({args.rows} rows, seed {args.seed})")


def cmd_train(args: argparse.Namespace) -> None:
    from modelmon.workshop.data import read_csv
    from modelmon.workshop.train import train_stores

    out = train_stores(read_csv(args.data), args.out)
    print(f"saved the stores model, its settings and reference profile to {out}")


def cmd_profile(args: argparse.Namespace) -> None:
    import warnings

    from modelmon.model.loading import load_model
    from modelmon.model.profile import ProfileNote, build_profile
    from modelmon.model.reference import ReferenceProfile, profile_path
    from modelmon.model.source import located, log_profile
    from modelmon.workshop.data import read_csv

    folder, origin = located(args.model)
    model = load_model(folder)
    calibration = read_csv(args.calibration_data) if args.calibration_data else None
    data = read_csv(args.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ProfileNote)
        profile = build_profile(model, data, target=args.target, calibration_data=calibration,
                                calibration_source=str(args.calibration_data or ""))
    notes = [str(w.message) for w in caught if issubclass(w.category, ProfileNote)]
    for w in caught:
        if not issubclass(w.category, ProfileNote):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    path = Path(args.out) if args.out else profile_path(folder)
    if profile.calibration is None and not profile.regression and path.is_file():
        try:
            calibrated = ReferenceProfile.load(path).calibration is not None
        except ModelmonError:
            calibrated = False  # an unreadable old profile is simply replaced
        if calibrated:
            why = notes[0] if notes else "no --target was given"
            raise ModelmonError(f"{path} holds a calibrated profile and this one is not ({why.rstrip('.')}): pass "
                                "--target (and --calibration-data), or write it elsewhere with --out, or delete "
                                "the old profile to replace it.")
    out = profile.save(path)
    print(f"wrote the reference profile of {model.name!r} ({profile.task}; {len(profile.features)} numeric and {len(profile.categories)} categorical inputs) to {out}")
    if origin is not None:
        print(f"logged it with the model, as {log_profile(origin, out)}: every server of {args.model} reads it")
    if profile.calibration is not None:
        c = profile.calibration
        print(f"calibrated its probabilities on {c.source}: expected calibration error {c.ece_before:.3f} before, "
              f"{c.ece_after:.3f} after (cross-fitted); accuracy there {c.reference.accuracy:.1%}")
    for note in notes:
        print(note)
    if profile.calibration is None and profile.probabilities and not notes:
        print("estimated quality will use the model's raw probabilities: pass --target (and --calibration-data "
              "with rows the model was not fitted on) to calibrate them")


SERVE_FLAGS = ("host", "app_port", "metrics_port", "workers", "max_batch_rows", "max_body_bytes", "batch_rows",
                "batch_wait_ms", "monitoring", "log_level", "prediction_log", "log_queue_rows", "log_flush_seconds",
                "log_retention", "log_max_rows", "follow_alias")


def cmd_serve(args: argparse.Namespace) -> None:
    args.model = args.model or args.model_path or DEFAULT_MODEL
    from modelmon.settings import load_settings

    settings = load_settings(args.profile, args.settings, flags={k: getattr(args, k) for k in SERVE_FLAGS})
    if settings.workers > 1:
        from modelmon.serving.workers import enable_multiprocess

        enable_multiprocess(args.multiproc_dir)
    import uvicorn

    from modelmon.model.loading import load_model
    from modelmon.model.reference import ReferenceProfile, profile_path
    from modelmon.model.source import located
    from modelmon.monitoring.exposition import serve_metrics_port
    from modelmon.serving.app import create_app
    from modelmon.targets.host import check_port_free

    check_port_free(settings.host, settings.app_port, "the app", hint="pass --port")
    if settings.metrics_port:
        check_port_free(settings.host, settings.metrics_port, "metrics", hint="pass another --metrics-port")
    folder, origin = located(args.model)
    follow = None
    if settings.follow_alias != "0":
        if origin is None or not origin.alias:
            raise ModelmonError("--follow-alias follows a Model Registry alias: serve models:/NAME@ALIAS.")
        if settings.workers > 1:
            raise ModelmonError("--follow-alias switches versions inside one process: serve with --workers 1 "
                                "and run replicas instead.")
        follow = origin
    model = load_model(folder)
    reference = args.reference or profile_path(folder)
    profile = ReferenceProfile.load(reference)
    metrics_at = f"http://{settings.host}:{settings.metrics_port or settings.app_port}/metrics"
    serving = (f"serving {model.name!r} on http://{settings.host}:{settings.app_port} with {settings.workers} "
               f"worker(s) (docs /docs, metrics {metrics_at}); {_predict_path_said(model)}")
    if settings.workers > 1:
        from modelmon.serving.workers import serve_workers

        if settings.prediction_log_on:
            from modelmon.monitoring.predictionstore import PredictionStore, store_url

            # Each worker opens the log after the fork; a bad URL or path must fail here, once.
            PredictionStore(store_url(settings.prediction_log_of(model.name))).close()
        print(serving, flush=True)
        serve_workers(folder, reference, settings)
        return
    app = create_app(model, profile, settings, follow=follow)  # opens the log: a bad path fails before we announce
    if settings.metrics_port:
        serve_metrics_port(app.state.registry, settings.host, settings.metrics_port)
    print(serving, flush=True)
    uvicorn.run(app, host=settings.host, port=settings.app_port, log_level=settings.log_level, access_log=False)


def _predict_path_said(model: LoadedModel) -> str:
    """How rows reach the model, as the startup line says it (modelmon_model_info's predict_path)."""
    path = model.predict_path
    if path == "matrix":
        return "rows reach the model as a plain matrix (the fast path)"
    if path == "pyfunc":
        return f"rows reach the model through MLflow's pyfunc ({model.flavor} flavor)"
    return f"rows reach the model as a DataFrame: {model.path_reason}"


def _load(model_dir: Path) -> ReferenceProfile:
    """The profile of a servable model folder (loading it checks that it can be served)."""
    from modelmon.model.loading import load_model
    from modelmon.model.reference import ReferenceProfile, profile_path

    load_model(model_dir)
    return ReferenceProfile.load(profile_path(model_dir))


FLEET_FLAGS = ("replicas", "shards", "rule_evaluation")


def _settings(args: argparse.Namespace) -> Settings:
    from modelmon.settings import load_settings

    return load_settings(args.profile, args.settings,
                         flags={k: getattr(args, k) for k in FLEET_FLAGS if hasattr(args, k)})


def cmd_stack_render(args: argparse.Namespace) -> None:
    from modelmon.targets.stack import render_kubernetes, render_stack

    folder = _local(args.model)
    profile = _load(folder)
    settings = _settings(args)
    if args.target == "kubernetes":
        written = render_kubernetes(profile, settings, args.out, folder)
    else:
        written = render_stack(profile, settings, args.out, topology=args.target, model_dir=folder).files
    print(f"wrote {len(written)} files for model {profile.model!r} ({settings.profile} profile, {args.target}) "
          f"to {args.out}/")


def cmd_receive(args: argparse.Namespace) -> None:
    from modelmon.contract.routes import SLACK_PATH
    from modelmon.settings import load_settings
    from modelmon.simulate.receiver import SlackReceiver
    from modelmon.targets.host import check_port_free

    settings = load_settings(flags={"host": args.host, "receiver_port": args.receiver_port})
    host, port = settings.host, settings.receiver_port
    check_port_free(host, port, "receiver", hint="pass --port")
    receiver = SlackReceiver(host, port, args.log)
    print(f"Slack stand-in listening on http://{host}:{port}{SLACK_PATH}, logging to {args.log}", flush=True)
    receiver.serve_forever()


def cmd_collect(args: argparse.Namespace) -> None:
    import uvicorn

    from modelmon.monitoring.monitor import Monitor
    from modelmon.serving.collector import create_collector
    from modelmon.settings import load_settings
    from modelmon.targets.host import check_port_free

    settings = load_settings(args.profile, args.settings, flags={"host": args.host, "app_port": args.app_port,
                                                                  "prediction_log": args.prediction_log})
    check_port_free(settings.host, settings.app_port, "the collector", hint="pass --port")
    monitor = Monitor.from_model_dir(_local(args.model))
    app = create_collector(monitor, settings)
    print(f"collecting for {monitor.profile.model!r} on http://{settings.host}:{settings.app_port} "
          "(KServe's logger URL: /, rows and answers: /observe, metrics: /metrics)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.app_port, log_level=settings.log_level, access_log=False)


def cmd_up(args: argparse.Namespace) -> None:
    from modelmon.targets.native import NativeStack

    folder = _local(args.model)
    profile = _load(folder)
    settings = _settings(args)
    run_dir = (args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")).resolve()
    stack = NativeStack(folder.resolve(), profile, settings, run_dir, collect=args.collect)
    stack.start()
    try:
        print(f"modelmon stack for {profile.model!r} is up ({settings.profile} profile); run folder {run_dir}")
        for what, url in stack.urls().items():
            print(f"  {what:32} {url}")
        print("Ctrl-C stops everything.", flush=True)
        stack.run_until_interrupted()
    finally:
        stack.stop()


def cmd_simulate(args: argparse.Namespace) -> None:
    from modelmon.simulate.scenarios import builtin_scenarios, load_scenario
    from modelmon.simulate.simulator import Simulator

    if args.list:
        for name in builtin_scenarios():
            scenario = load_scenario(name)
            print(f"{name:16} {scenario.duration:>6.0f} s  {scenario.description}")
        return
    scenario = load_scenario(args.scenario)
    if args.duration:
        from modelmon.settings import seconds

        scenario = scenario.lasting(seconds(args.duration))
    if args.speed != 1.0:
        scenario = scenario.faster(args.speed)
    result = Simulator(args.url.split(","), scenario, seed=args.seed, concurrency=args.concurrency,
                       show_progress=not args.quiet).run()
    print(result.table())


def cmd_backtest(args: argparse.Namespace) -> None:
    from modelmon.backtest.result import grace_of, write_outputs
    from modelmon.backtest.run import backtest, backtest_log
    from modelmon.model.loading import load_model
    from modelmon.model.reference import ReferenceProfile, profile_path
    from modelmon.settings import seconds
    from modelmon.simulate.scenarios import load_scenario, parse_rate

    settings = _settings(args)
    folder = _local(args.model)
    model = load_model(folder)
    profile = ReferenceProfile.load(profile_path(folder))
    if args.log:
        result = backtest_log(model, profile, args.log, settings)
    else:
        scenario = load_scenario(args.scenario)
        if args.rate:
            scenario = scenario.at_rate(parse_rate(args.rate, "--rate"))
        if args.duration:
            scenario = scenario.lasting(seconds(args.duration))
        result = backtest(model, profile, scenario, settings, seed=args.seed)
    print(result.table(grace_of(settings)))
    if args.out:
        written = write_outputs(result, settings, args.out)
        print("wrote " + ", ".join(str(p) for p in written))


def cmd_demo(args: argparse.Namespace) -> None:
    from modelmon.workshop.demo import run_demo

    settings = _settings(args)
    run_dir = (args.run_dir or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    run_demo(_local(args.model), args.data, settings, run_dir, scenario_name=args.scenario, seed=args.seed,
             keep_running=not args.exit)


def cmd_data_explore(args: argparse.Namespace) -> None:
    from modelmon.report.eda import explore

    if not args.data.exists():
        raise ModelmonError(f"No data file at {args.data}: run `modelmon data generate` or pass --data PATH.")
    profile = None
    if args.model is not None:
        from modelmon.model.reference import ReferenceProfile, profile_path

        profile = ReferenceProfile.load(profile_path(_local(args.model)))
        if profile.calibration is None:
            print(f"the profile of {args.model} holds no calibration: build it with `modelmon profile --target ...`")
    written = explore(args.data, args.out, target=args.target, profile=profile)
    print(f"wrote {len(written) - 1} plots and summary.md to {args.out}/")


def cmd_report(args: argparse.Namespace) -> None:
    import json

    from modelmon.report.writer import PhaseMark, board_for, stack_settings, write_report
    from modelmon.settings import seconds
    from modelmon.targets.dashboards import build_dashboard

    profile = _load(_local(args.model))
    if args.dashboard:
        board = board_for(args.dashboard)
    else:
        # The panels read recorded series whose names carry the stack's windows: take them
        # from the stack itself (its folder, else its Prometheus), not from a guess.
        settings = stack_settings(args.prometheus, _settings(args), args.stack, profile)
        board = build_dashboard(profile, settings)
    phases = []
    if args.phases:
        phases = [PhaseMark(p["name"], p["at"]) for p in json.loads(args.phases.read_text())]
    out = args.out or Path("reports") / time.strftime("%Y%m%d-%H%M%S")
    page = write_report(args.prometheus, board, profile.model, out, seconds(args.since), phases)
    print(f"wrote {page} (and a PNG per panel in {out / 'panels'})")

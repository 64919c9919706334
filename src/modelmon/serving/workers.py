"""`modelmon serve --workers N`: gunicorn with uvicorn workers and prometheus_client's
multiprocess mode, so /metrics sums what every worker counted.

Each worker is its own process with its own metric objects; their values live in mmap files
in one folder, which must be set before any metric is created and emptied at start (stale
files from an earlier run would be added in). Counters and histograms are summed across
workers, dead workers included, so a restart never loses a count; gauges use the mode chosen
in metrics.py (latest value, or max for the static reference gauges).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from modelmon.settings import MULTIPROC_ENV, Settings

ENV_CONFIG = "MODELMON_WORKER_CONFIG"


def enable_multiprocess(folder: Path | None) -> Path:
    """Empty the workers' metric folder (stale files would be summed in) and point
    prometheus_client at it. It picks its value store once, when first imported, from the
    environment: so this must run before anything imports it (`modelmon serve` does)."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("enable_multiprocess must run before prometheus_client is imported")
    folder = folder or Path(tempfile.mkdtemp(prefix="modelmon-metrics-"))
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def app_from_environment() -> Any:
    """The ASGI app of one worker (gunicorn imports this after forking)."""
    from modelmon.model.loading import load_model
    from modelmon.model.reference import ReferenceProfile
    from modelmon.serving.app import create_app

    config = json.loads(os.environ[ENV_CONFIG])
    model = load_model(config["model"])
    profile = ReferenceProfile.load(Path(config["reference"]))
    return create_app(model, profile, Settings(**config["settings"]))


def _worker_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def serve_workers(model_dir: Path, reference: Path, settings: Settings) -> None:
    """Run gunicorn; `enable_multiprocess` must have run first."""
    from gunicorn.app.base import BaseApplication

    def when_ready(server: Any) -> None:
        if settings.metrics_port:  # the master serves every worker's metrics on a port of its own
            from prometheus_client import CollectorRegistry

            from modelmon.monitoring.exposition import serve_metrics_port

            serve_metrics_port(CollectorRegistry(), settings.host, settings.metrics_port)

    os.environ[ENV_CONFIG] = json.dumps({"model": str(model_dir.resolve()), "reference": str(reference.resolve()),
                                         "settings": dataclasses.asdict(settings)})

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"{settings.host}:{settings.app_port}",
                "workers": settings.workers,
                "worker_class": "uvicorn_worker.UvicornWorker",
                "child_exit": _worker_exit,
                "when_ready": when_ready,
                "loglevel": settings.log_level,
                "accesslog": None,
                "graceful_timeout": 10,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app_from_environment()

    _Gunicorn().run()

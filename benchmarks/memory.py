"""Resident memory and time to ready of `modelmon serve` for every kind of model, against the
stores model in the same run.

    .venv/bin/python benchmarks/memory.py [--requests 3000]

Builds the models of tests/kinds.py (a regressor, a classifier with string classes, one with
a categorical and a nullable input, a LightGBM model, a custom pyfunc) from their seeded data,
serves each with one worker and its prediction log, sends `--requests` single rows and as many
rows again in batches of 100 (plus labels for the ones that take them), and reads the
server's resident memory. The figure the target is about: each model's RSS minus the stores
model's (target: at most 50 MB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serving import rss_mb, wait_ready  # noqa: E402
from modelmon.targets.host import free_port  # noqa: E402
from tests import kinds  # noqa: E402

Row = Callable[[np.random.Generator], dict[str, Any]]

MODELS: dict[str, tuple[Callable[[Path], Path] | None, Row]] = {
    "stores (baseline)": (None, lambda r: {"items_count": int(r.normal(1782, 300)),
                                           "customers_count": max(0, int(r.normal(786, 265)))}),
    "regressor (Ridge)": (kinds.build_regressor, lambda r: {"sqft": float(r.normal(120, 35)),
                                                            "rooms": int(r.integers(1, 7))}),
    "string classes (iris)": (kinds.build_string_classes, lambda r: {
        "sepal_length_cm": float(r.normal(5.8, 0.8)), "sepal_width_cm": float(r.normal(3.0, 0.4)),
        "petal_length_cm": float(r.normal(3.8, 1.7)), "petal_width_cm": float(r.normal(1.2, 0.7))}),
    "categorical + missing": (kinds.build_categorical, lambda r: {
        "country": str(r.choice(["de", "fr", "it", "es"])),
        "amount": None if r.random() < 0.1 else float(r.normal(75, 25))}),
    "LightGBM": (kinds.build_lightgbm, lambda r: {"sqft": float(r.normal(120, 35)), "rooms": int(r.integers(1, 7))}),
    "custom pyfunc": (kinds.build_custom_pyfunc, lambda r: {"a": float(r.normal(10, 2)), "b": float(r.normal(5, 1))}),
}


def measure(model_dir: Path, row: Row, requests: int, work: Path) -> tuple[float, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "modelmon", "serve", str(model_dir), "--port", str(port),
                             "--prediction-log", str(work / f"log-{port}.sqlite")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = wait_ready(url, proc)
        rng = np.random.default_rng(0)
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(requests):
                client.post("/predict", content=json.dumps(row(rng)), headers={"content-type": "application/json"})
            for _ in range(requests // 100):
                client.post("/predict", json={"instances": [row(rng) for _ in range(100)]})
            client.get("/metrics")
        return rss_mb(proc.pid), ready
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelmon-memory-"))
    figures = {}
    for name, (build, row) in MODELS.items():
        if build is None:
            model_dir = ROOT / "models" / "stores"
        else:
            folder = work / name.split()[0]
            folder.mkdir()
            model_dir = build(folder)
        figures[name] = measure(model_dir, row, args.requests, work)
    baseline = figures["stores (baseline)"][0]
    print(f"\n{'model':<24}{'RSS MB':>8}{'vs stores':>11}{'ready s':>9}   target: within 50 MB of stores")
    worst = 0.0
    for name, (rss, ready) in figures.items():
        worst = max(worst, rss - baseline)
        print(f"{name:<24}{rss:>8.0f}{rss - baseline:>+11.0f}{ready:>9.2f}")
    print(f"\nlargest difference: {worst:+.0f} MB ({'met' if worst <= 50 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

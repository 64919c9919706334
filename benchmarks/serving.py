"""Serving speed, side by side in one run: modelmon with its default settings (monitoring and the
prediction log on), with the log off, with monitoring off, a no-op endpoint on the same ASGI
stack, and `mlflow models serve` on the same model, each with one worker on core 0, driven by
wrk on core 1. The stores classifier, a scikit-learn regressor and a LightGBM classifier.

    make bench-serving ARGS="--seconds 10 --rounds 3"      # installs wrk and py-spy, then runs this

Prints a table, the ratios the performance targets are about, and (--profile) where the
headline server spends its time under single-row load, from py-spy.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.kinds builds the other model kinds

from modelmon.targets.host import free_port  # noqa: E402
from modelmon.workshop.data import generate_stores  # noqa: E402

PY = sys.executable
BIN = Path(PY).parent  # mlflow's CLI, and the uvicorn it starts by name, live beside this Python
BIG = ["--max-batch-rows", "20000", "--max-body-bytes", "20000000"]  # only the limits: 10,000-row batches pass


@dataclass
class Model:
    name: str
    path: Path
    rows: pd.DataFrame  # feature columns to send


@dataclass
class Server:
    label: str
    model: Model
    argv: list[str]
    routes: list[str]  # measured: /predict (modelmon's body) and/or /invocations (MLflow's)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # route -> figures
    ready_s: float = 0.0
    rss_mb: float = 0.0


def modelmon(model: Model, *extra: str) -> list[str]:
    return [PY, "-m", "modelmon", "serve", str(model.path), "--port", "{port}", *BIG, *extra]


def mlflow(model: Model) -> list[str]:
    return [str(BIN / "mlflow"), "models", "serve", "-m", str(model.path), "--env-manager", "local",
            "-p", "{port}", "-h", "127.0.0.1", "-w", "1"]


def build_models(kinds: list[str], root: Path) -> list[Model]:
    from tests import kinds as builders

    models = []
    for kind in kinds:
        if kind == "stores":
            rows = generate_stores(rows=10_000, seed=11)[["items_count", "customers_count"]]
            models.append(Model("stores", ROOT / "models" / "stores", rows))
        elif kind == "houses":
            path = builders.build_regressor(root / "houses")
            models.append(Model("houses (Ridge regressor)", path, builders.houses(10_000, seed=11)[["sqft", "rooms"]]))
        elif kind == "lightgbm":
            path = builders.build_lightgbm(root / "lightgbm")
            models.append(Model("houses (LightGBM)", path, builders.houses(10_000, seed=11)[["sqft", "rooms"]]))
    return models


def servers(models: list[Model], log_dir: Path) -> list[Server]:
    out = []
    for model in models:
        log = ["--prediction-log", str(log_dir / f"{model.path.parent.name}-{len(out)}.sqlite")]
        if model.name == "stores":
            out += [
                Server("modelmon, default settings", model, modelmon(model, *log), ["/predict", "/invocations"]),
                Server("modelmon, prediction log off", model, modelmon(model, "--prediction-log", "off"),
                       ["/predict"]),
                Server("modelmon, monitoring off", model,
                       modelmon(model, "--no-monitoring", "--prediction-log", "off"), ["/predict"]),
                Server("no-op endpoint, same stack", model,
                       [PY, "-m", "uvicorn", "noop_app:app", "--port", "{port}", "--log-level", "warning",
                        "--loop", "uvloop", "--http", "httptools", "--no-access-log"], ["/predict"]),
            ]
        else:
            out.append(Server("modelmon, default settings", model, modelmon(model, *log), ["/invocations"]))
        out.append(Server("mlflow models serve", model, mlflow(model), ["/invocations"]))
    return out


def body(route: str, rows: pd.DataFrame) -> bytes:
    """modelmon's /predict body (one record, or `instances`), or MLflow's `dataframe_split`."""
    records = json.loads(rows.to_json(orient="records"))
    if route == "/predict":
        return json.dumps(records[0] if len(records) == 1 else {"instances": records}).encode()
    return json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}).encode()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        for path in ("/ready", "/ping"):
            try:
                if httpx.get(url + path, timeout=1).status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready in {timeout} s")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for p in [pid, *map(int, children)]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children so far: per request, it is
    steadier than throughput on a machine whose other tenants take turns."""
    ticks = 0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for p in [pid, *map(int, children)]:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(url: str, payload: bytes, seconds: int, connections: int) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(payload.decode())}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True).stdout
    script.unlink()

    def ms(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    requests = re.search(r"(\d+) requests in", out)
    assert rps and requests, out
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(rps.group(1)), "requests": float(requests.group(1)), "p50": ms("50%"), "p99": ms("99%"),
            "errors": float(errors.group(1)) if errors else 0.0}


def batch_rows_per_second(url: str, payload: bytes, rows: int, repeats: int = 5) -> float:
    with httpx.Client(timeout=120) as client:
        post = lambda: client.post(url, content=payload, headers={"content-type": "application/json"})  # noqa: E731
        post()  # warm up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            response = post()
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text[:200]
    return rows / statistics.median(times)


def scrape_under_load(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            start = time.perf_counter()
            client.get(url + "/metrics")
            out.append(time.perf_counter() - start)
            stop.wait(0.5)


def profile(pid: int, seconds: int, during: Callable[[], object]) -> list[tuple[str, float]]:
    """py-spy's samples of `pid`'s event-loop thread while `during` runs: the share of them
    idle in the event loop's select, then each function's inclusive share."""
    raw = Path(tempfile.mkstemp(suffix=".txt")[1])
    spy = subprocess.Popen([str(BIN / "py-spy"), "record", "-p", str(pid), "-d", str(seconds), "-r", "200",
                            "--format", "raw", "-o", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    during()
    spy.wait(60)
    inclusive: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "Server.run (uvicorn" not in stack:
            continue  # another thread: the prediction log's writer, waiting or writing
        frames = [re.sub(r":\d+\)", ")", f) for f in stack.split(";")]
        n = int(count)
        total += n
        if frames[-1].startswith("select (selectors.py)"):
            idle += n
        for frame in set(frames):
            inclusive[frame] += n
    raw.unlink()
    if not total:
        return []
    shares = [("event loop idle in select (waiting for requests)", idle / total)]
    return shares + [(frame, n / total) for frame, n in inclusive.most_common() if n < 0.9 * total]


def measure(server: Server, args: argparse.Namespace) -> list[tuple[str, float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [a.replace("{port}", str(port)) for a in server.argv]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(["taskset", "-c", "0", *argv], cwd=Path(__file__).parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    spent: list[tuple[str, float]] = []
    try:
        server.ready_s = wait_ready(url, proc)
        time.sleep(0.5)
        server.rss_mb = rss_mb(proc.pid)  # after load, before any request
        rows = server.model.rows
        for route in server.routes:
            single = body(route, rows.head(1))
            wrk(url + route, single, 2, args.connections)  # warm up
            scrapes: list[float] = []
            stop = threading.Event()
            headline = server.label.startswith("modelmon, default") and route == "/predict"
            scraper = threading.Thread(target=scrape_under_load, args=(url, stop, scrapes), daemon=True)
            if headline:
                scraper.start()
            cpu = cpu_seconds(proc.pid)
            rounds = [wrk(url + route, single, args.seconds, args.connections) for _ in range(args.rounds)]
            cpu = cpu_seconds(proc.pid) - cpu
            stop.set()
            figures: dict[str, Any] = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
            figures["cpu_us"] = cpu / sum(r["requests"] for r in rounds) * 1e6  # per single-row request
            figures["rounds"] = [r["rps"] for r in rounds]
            if scrapes:
                scraper.join()
                figures["scrape_ms"] = statistics.median(scrapes) * 1000
            if not server.label.startswith("no-op"):
                for n in (1000, 10000):
                    figures[f"batch{n}"] = batch_rows_per_second(url + route, body(route, rows.head(n)), n)
            if headline and args.profile:
                spent = profile(proc.pid, args.seconds,
                                functools.partial(wrk, url + route, single, args.seconds + 2, args.connections))
            server.figures[route] = figures
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
    return spent


def find(servers: list[Server], label: str, model: str = "stores") -> Server:
    return next(s for s in servers if s.label == label and s.model.name == model)


def report(all_servers: list[Server], args: argparse.Namespace) -> None:
    print(f"\nsingle-row POSTs: {args.connections} connections, median of {args.rounds} x {args.seconds} s, "
          "server on core 0, wrk on core 1; batches: one client, median of 5\n")
    print(f"{'server':<32}{'model':<26}{'route':<14}{'req/s':>8}{'CPU us':>8}{'p50 ms':>8}{'p99 ms':>8}{'err':>5}"
          f"{'rows/s @1k':>12}{'rows/s @10k':>13}{'RSS MB':>8}{'ready s':>8}   rounds")
    for s in all_servers:
        for route, f in s.figures.items():
            print(f"{s.label:<32}{s.model.name:<26}{route:<14}{f['rps']:>8.0f}{f['cpu_us']:>8.0f}"
                  f"{f['p50']:>8.2f}{f['p99']:>8.2f}"
                  f"{f['errors']:>5.0f}{f.get('batch1000', float('nan')):>12,.0f}"
                  f"{f.get('batch10000', float('nan')):>13,.0f}{s.rss_mb:>8.0f}{s.ready_s:>8.2f}   "
                  f"{', '.join(f'{r:.0f}' for r in f['rounds'])}")
    checks: list[tuple[str, float, str, bool]] = []
    if any(s.model.name == "stores" for s in all_servers):
        full = find(all_servers, "modelmon, default settings")
        nolog, off = find(all_servers, "modelmon, prediction log off"), find(all_servers, "modelmon, monitoring off")
        noop, ml = find(all_servers, "no-op endpoint, same stack"), find(all_servers, "mlflow models serve")
        p, inv, mli = full.figures["/predict"], full.figures["/invocations"], ml.figures["/invocations"]
        print(f"\n/metrics scrape under load (median): {p.get('scrape_ms', float('nan')):.1f} ms")
        checks += [
            ("single-row /predict vs mlflow models serve", p["rps"] / mli["rps"], ">= 10x", p["rps"] >= 10 * mli["rps"]),
            ("single-row /invocations vs mlflow models serve", inv["rps"] / mli["rps"], ">= 10x",
             inv["rps"] >= 10 * mli["rps"]),
            ("share of the no-op floor", p["rps"] / noop.figures["/predict"]["rps"], ">= 50%",
             p["rps"] >= 0.5 * noop.figures["/predict"]["rps"]),
            ("all monitoring (1 - default/monitoring off)", 1 - p["rps"] / off.figures["/predict"]["rps"], "<= 10%",
             p["rps"] >= 0.9 * off.figures["/predict"]["rps"]),
            ("the log alone (1 - default/log off)", 1 - p["rps"] / nolog.figures["/predict"]["rps"], "<= 5%",
             p["rps"] >= 0.95 * nolog.figures["/predict"]["rps"]),
            ("all monitoring, from CPU time per request", 1 - off.figures["/predict"]["cpu_us"] / p["cpu_us"], "<= 10%",
             off.figures["/predict"]["cpu_us"] >= 0.9 * p["cpu_us"]),
            ("the log alone, from CPU time per request", 1 - nolog.figures["/predict"]["cpu_us"] / p["cpu_us"], "<= 5%",
             nolog.figures["/predict"]["cpu_us"] >= 0.95 * p["cpu_us"]),
            ("10,000 rows via /predict vs mlflow", p["batch10000"] / mli["batch10000"], ">= 1x",
             p["batch10000"] >= mli["batch10000"]),
            ("resident memory after load (MB)", full.rss_mb, "<= 200", full.rss_mb <= 200),
            ("time from start to ready (s)", full.ready_s, "<= 2", full.ready_s <= 2),
        ]
    for model in dict.fromkeys(s.model.name for s in all_servers):
        ours = find(all_servers, "modelmon, default settings", model).figures["/invocations"]["batch10000"]
        theirs = find(all_servers, "mlflow models serve", model).figures["/invocations"]["batch10000"]
        checks.append((f"10,000 rows via /invocations vs mlflow, {model}", ours / theirs, ">= 2x", ours >= 2 * theirs))
    print()
    for label, value, target, ok in checks:
        shown = f"{value:.1%}" if "%" in target else f"{value:,.2f}"
        print(f"{label:<58}{shown:>10}  target {target:<8} {'met' if ok else 'MISSED'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server and route; the median is reported")
    parser.add_argument("--models", default="stores,houses,lightgbm", help="stores, houses (a regressor), lightgbm")
    parser.add_argument("--profile", action="store_true", help="py-spy the headline server under single-row load")
    args = parser.parse_args()
    for tool, package in (("wrk", "wrk"), ("taskset", "util-linux")):
        if not shutil.which(tool):
            print(f"{tool} is not installed: apt-get install -y {package} (or run `make bench-serving`)", file=sys.stderr)
            return 2
    if args.profile and not (BIN / "py-spy").exists():
        print("py-spy is not installed: run `make bench-serving`, which installs it", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="modelmon-bench-") as tmp:
        models = build_models(args.models.split(","), Path(tmp))
        all_servers = servers(models, Path(tmp))
        spent: list[tuple[str, float]] = []
        for server in all_servers:
            spent = measure(server, args) or spent
            print(f"measured {server.label} ({server.model.name})", file=sys.stderr)
    report(all_servers, args)
    if spent:
        print("\nwhere the headline server's event-loop thread spends its time under single-row load "
              "(py-spy, inclusive share of its samples, top 30):")
        for frame, share in spent[:30]:
            print(f"{share:>7.1%}  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

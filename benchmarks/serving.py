"""Serving speed, side by side in one run: modelmon (monitoring on and off), a no-op endpoint
on the same ASGI stack, and `mlflow models serve`, each with one worker on core 0, driven by
wrk on core 1.

    python benchmarks/serving.py [--seconds 10] [--connections 16] [--rounds 3]

Prints a table and the ratios the performance targets are about.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

import httpx
import numpy as np

from modelmon.native import free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "stores"
PY = sys.executable


def servers(port: int) -> dict[str, tuple[list[str], str, str]]:
    """name -> (argv, predict path, single-row body)."""
    row = '{"items_count": 1800, "customers_count": 1200}'
    big = ["--max-batch-rows", "20000", "--max-body-bytes", "10000000"]
    log = ["--prediction-log", str(Path(tempfile.mkdtemp(prefix="modelmon-bench-")) / "predictions.sqlite")]
    return {
        "modelmon (full monitoring)": (
            [PY, "-m", "modelmon", "serve", str(MODEL), "--port", str(port), *big, *log], "/predict", row),
        "modelmon (no prediction log)": (
            [PY, "-m", "modelmon", "serve", str(MODEL), "--port", str(port), *big, "--prediction-log", "off"],
            "/predict", row),
        "modelmon (monitoring off)": (
            [PY, "-m", "modelmon", "serve", str(MODEL), "--port", str(port), "--no-monitoring", *big,
             "--prediction-log", "off"], "/predict", row),
        "no-op endpoint (same stack)": (
            [PY, "-m", "uvicorn", "noop_app:app", "--port", str(port), "--log-level", "warning",
             "--loop", "uvloop", "--http", "httptools", "--no-access-log"], "/predict", row),
        "mlflow models serve": (
            [shutil.which("mlflow") or "mlflow", "models", "serve", "-m", str(MODEL), "--env-manager", "local",
             "-p", str(port), "-h", "127.0.0.1", "-w", "1"], "/invocations",
            '{"dataframe_records": [{"items_count": 1800, "customers_count": 1200}]}'),
    }


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        for path in ("/ready", "/ping", "/health"):
            try:
                if httpx.get(url + path, timeout=1).status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready in {timeout} s")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                      text=True).stdout.split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def wrk(url: str, body: str, seconds: int, connections: int) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True).stdout
    script.unlink()

    def ms(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": ms("50%"), "p99": ms("99%"),
            "errors": float(errors.group(1)) if errors else 0.0}


def batch_rows_per_second(url: str, path: str, rows: int, mlflow: bool, repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    records = [{"items_count": int(a), "customers_count": int(b)}
               for a, b in zip(rng.integers(500, 3000, rows), rng.integers(0, 2000, rows))]
    body = {"dataframe_records": records} if mlflow else {"instances": records}
    payload = json.dumps(body).encode()
    with httpx.Client(timeout=120) as client:
        client.post(url + path, content=payload, headers={"content-type": "application/json"})  # warm up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            response = client.post(url + path, content=payload, headers={"content-type": "application/json"})
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server; the median is reported")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: sudo apt-get install -y wrk", file=sys.stderr)
        return 2
    results: dict[str, dict[str, float]] = {}
    for name, _ in servers(0).items():
        port = free_port()
        argv, path, body = servers(port)[name]
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(["taskset", "-c", "0", *argv], cwd=Path(__file__).parent, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            ready = wait_ready(url, proc)
            wrk(url + path, body, 2, args.connections)  # warm up
            scrapes: list[float] = []
            stop = threading.Event()
            scraper = None
            if name.startswith("modelmon (full"):
                scraper = threading.Thread(target=scrape_under_load, args=(url, stop, scrapes), daemon=True)
                scraper.start()
            rounds = [wrk(url + path, body, args.seconds, args.connections) for _ in range(args.rounds)]
            figures = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
            figures["rps_all"] = [r["rps"] for r in rounds]  # type: ignore[assignment]
            stop.set()
            if scraper:
                scraper.join()
            figures.update(ready_s=ready, rss_mb=rss_mb(proc.pid))
            if scrapes:
                figures["scrape_ms"] = statistics.median(scrapes) * 1000
            if not name.startswith("no-op"):
                for rows in (1000, 10000):
                    figures[f"batch{rows}"] = batch_rows_per_second(url, path, rows, mlflow=name.startswith("mlflow"))
            results[name] = figures
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(20)
        print(f"measured {name}", file=sys.stderr)

    print(f"\nsingle-row POSTs, {args.connections} connections, median of {args.rounds} x {args.seconds} s, "
          "server on core 0, wrk on core 1\n")
    print(f"{'server':<30}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'rows/s @1k':>13}{'rows/s @10k':>13}"
          f"{'RSS MB':>8}{'ready s':>9}")
    for name, f in results.items():
        print(f"{name:<30}{f['rps']:>9.0f}{f['p50']:>9.2f}{f['p99']:>9.2f}{f['errors']:>8.0f}"
              f"{f.get('batch1000', float('nan')):>13,.0f}{f.get('batch10000', float('nan')):>13,.0f}"
              f"{f['rss_mb']:>8.0f}{f['ready_s']:>9.2f}   rounds: {', '.join(f'{r:.0f}' for r in f['rps_all'])}")
    full, off = results["modelmon (full monitoring)"], results["modelmon (monitoring off)"]
    nolog = results["modelmon (no prediction log)"]
    noop, mlflow = results["no-op endpoint (same stack)"], results["mlflow models serve"]
    checks = [
        ("single-row throughput vs mlflow models serve", full["rps"] / mlflow["rps"], ">= 5x", full["rps"] / mlflow["rps"] >= 5),
        ("monitoring overhead (1 - full/off)", 1 - full["rps"] / off["rps"], "<= 10%", 1 - full["rps"] / off["rps"] <= 0.10),
        ("of which the prediction log (1 - full/no log)", 1 - full["rps"] / nolog["rps"], "(measured)", True),
        ("10,000-row batches with/without the log", full["batch10000"] / nolog["batch10000"], "(measured)", True),
        ("share of the no-op floor", full["rps"] / noop["rps"], ">= 50%", full["rps"] / noop["rps"] >= 0.5),
        ("batch of 10,000 rows: rows/s", full["batch10000"], ">= 200,000", full["batch10000"] >= 200_000),
        ("batch of 10,000 rows vs mlflow", full["batch10000"] / mlflow["batch10000"], ">= 3x",
         full["batch10000"] / mlflow["batch10000"] >= 3),
        ("resident memory after load (MB)", full["rss_mb"], "<= 200", full["rss_mb"] <= 200),
        ("time from start to ready (s)", full["ready_s"], "<= 3", full["ready_s"] <= 3),
    ]
    print(f"\n/metrics scrape under load (median): {full.get('scrape_ms', float('nan')):.1f} ms\n")
    for label, value, target, ok in checks:
        shown = f"{value:.1%}" if "%" in target else f"{value:,.2f}"
        print(f"{label:<48}{shown:>12}  target {target:<12} {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

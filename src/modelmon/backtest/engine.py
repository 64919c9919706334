"""Prometheus' own tools over the recorded scrapes: backfill the TSDB and the recording rules
level by level, then evaluate each alert as a range query with its `for`.
"""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

# The simulated clock starts here (a fixed instant, so runs are reproducible to the sample).
from modelmon.backtest.player import Played
from modelmon.backtest.recorder import EPOCH, NAME
from modelmon.backtest.result import BacktestError, Episode
from modelmon.settings import Settings, seconds
from modelmon.targets.host import check_port_free, find_binary, free_port
from modelmon.targets.promapi import PrometheusAPI, PrometheusAPIError

_QUERY_STEPS = 10_000  # Prometheus answers at most 11,000 points per series and query


def rule_names(files: Mapping[str, str]) -> set[str]:
    names: set[str] = set()
    for text in files.values():
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                names |= set(NAME.findall(rule["expr"]))
    return names


def _levels(recording: Sequence[Mapping[str, str]]) -> list[list[Mapping[str, str]]]:
    """Recording rules grouped so that each reads only series of earlier groups."""
    names = {r["record"] for r in recording}
    level: dict[str, int] = {}
    for rule in recording:  # generated in evaluation order: what a rule reads comes before it
        reads = set(NAME.findall(rule["expr"])) & names - {rule["record"]}
        level[rule["record"]] = max(level.get(rule["record"], 0), 1 + max((level.get(r, 0) for r in reads), default=0))
    depth = max(level.values(), default=0)
    return [[r for r in recording if level[r["record"]] == k] for k in range(1, depth + 1)]


@contextmanager
def _prometheus(binary: str, tsdb: Path, config: Path, port: int, log: Path) -> Iterator[str]:
    """A Prometheus serving the TSDB, scraping nothing, until the block exits."""
    check_port_free("127.0.0.1", port, "prometheus")
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
                                    "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}",
                                    "--query.max-samples=200000000"],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise BacktestError(f"Prometheus stopped while opening the backfilled TSDB; see {log}.")
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BacktestError(f"Prometheus did not become ready on the backfilled TSDB in 120 s; see {log}.")
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _promtool(promtool: str, *args: str, what: str) -> None:
    done = subprocess.run([promtool, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BacktestError(f"promtool could not {what}: {(done.stderr or done.stdout).strip()[-600:]}")


def _backfill_rules(promtool: str, url: str, rules: Sequence[Mapping[str, str]], out: Path, start: float,
                    end: float, interval: str) -> Path:
    """The blocks of `rules` over [start, end], evaluated by the Prometheus at `url`."""
    source = out.with_suffix(".yml")
    source.write_text(yaml.safe_dump({"groups": [{"name": out.name, "rules": list(rules)}]}))
    _promtool(promtool, "tsdb", "create-blocks-from", "rules", f"--start={int(start)}", f"--end={int(end)}",
              f"--url={url}", f"--eval-interval={interval}", f"--output-dir={out}", str(source),
              what=f"backfill recording rules ({out.name})")
    return out


def _move_blocks(source: Path, tsdb: Path) -> None:
    for block in source.iterdir():
        if block.is_dir() and (block / "meta.json").exists():
            shutil.move(str(block), tsdb / block.name)


def _query_range(url: str, expr: str, start: float, end: float, step: float) -> dict[tuple[tuple[str, str], ...],
                                                                                    list[float]]:
    """Evaluation times (unix seconds) at which each output series of `expr` exists."""
    return {key: [t for t, _ in points] for key, points in _range(url, expr, start, end, step).items()}


def _range(url: str, expr: str, start: float, end: float, step: float) -> dict[tuple[tuple[str, str], ...],
                                                                              list[tuple[float, float]]]:
    """(unix seconds, value) of each output series of `expr` at each evaluation where it exists."""
    out: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    api = PrometheusAPI(url, timeout=600)
    chunk = step * _QUERY_STEPS
    t = start
    with httpx.Client(timeout=600) as client:
        while t <= end:
            stop = min(end, t + chunk - step)
            try:
                data = api.post("/api/v1/query_range",
                                {"query": expr, "start": repr(t), "end": repr(stop), "step": repr(step)}, client)
            except PrometheusAPIError as exc:
                raise BacktestError(f"Prometheus refused the expression {expr!r}: {exc}") from None
            for series in data["result"]:
                # An alert's labels are its expression's output labels but the name: the
                # branches of an `or` make one alert series.
                key = tuple(sorted((k, v) for k, v in series["metric"].items() if k != "__name__"))
                out.setdefault(key, []).extend((float(ts), float(v)) for ts, v in series["values"])
            t = stop + step
    return out


def _check_recorded(url: str, record: str, start: float, end: float, step: float) -> None:
    """Refuse to score alerts over recorded series that the backfill did not write: no alert
    would fire, and that would read as no false alarms."""
    span = int(end - start)
    try:
        result = PrometheusAPI(url, timeout=600).query(f"count_over_time({record}[{span}s])", repr(end))
    except PrometheusAPIError as exc:
        raise BacktestError(f"Prometheus could not count the recorded {record}: {exc}") from None
    got = sum(float(r["value"][1]) for r in result)
    if got < 0.9 * span / step:
        raise BacktestError(f"The recording rules were backfilled for {got:.0f} of the {span / step:.0f} "
                            f"evaluations ({record}); see the Prometheus log in the backtest's work folder.")


def episodes_of(alert: str, times: Sequence[float], step: float, hold: float) -> list[Episode]:
    """Prometheus' `for`: a series is active from the first evaluation its expression returns
    it and fires at the first evaluation at least `hold` later while it still does; an
    evaluation without it ends the episode."""
    out: list[Episode] = []
    run_start = prev = None
    for t in [*sorted(set(times)), math.inf]:
        if prev is not None and t - prev > step * 1.5:
            assert run_start is not None
            fire = run_start + math.ceil(hold / step - 1e-9) * step
            if fire <= prev + 1e-6:
                out.append(Episode(alert, {}, run_start, fire, prev))
            run_start = None
        if run_start is None:
            run_start = t
        prev = t
    return out


def evaluate(files: Mapping[str, str], played: Played, settings: Settings, workdir: Path,
             timings: dict[str, float], read: Mapping[str, str] | None = None,
             ) -> tuple[list[Episode], dict[str, list[tuple[float, float]]]]:
    """Steps 2 and 3 of the module docstring, in `workdir`: every alert's firing episodes;
    and the (seconds from the start, value) points of each model-level series in `read`."""
    prometheus, promtool = find_binary("prometheus"), find_binary("promtool")
    tsdb = workdir / "tsdb"
    tsdb.mkdir(parents=True, exist_ok=True)
    log = workdir / "prometheus.log"
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"evaluation_interval": settings.evaluation_interval,
                                                 "scrape_interval": settings.scrape_interval}}))
    began = time.perf_counter()
    chunks = played.scrapes.write(workdir)

    def backfill(path: Path) -> None:
        _promtool(promtool, "tsdb", "create-blocks-from", "openmetrics", str(path), str(tsdb),
                  what="backfill the simulated scrapes")
        path.unlink()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(backfill, chunks))
    timings["backfill scrapes"] = time.perf_counter() - began
    step = seconds(settings.evaluation_interval)
    start, end = EPOCH + step, EPOCH + played.phases[-1].end
    recording = [r for g in yaml.safe_load(files["recording.yml"])["groups"] for r in g["rules"]]
    began = time.perf_counter()
    for k, level in enumerate(_levels(recording)):
        halves = [half for half in (level[0::2], level[1::2]) if half]  # two promtools: one core each
        with _prometheus(prometheus, tsdb, config, free_port(), log) as url, ThreadPoolExecutor(2) as pool:
            outs = [pool.submit(_backfill_rules, promtool, url, half, workdir / f"level-{k + 1}-{i}", start, end,
                                settings.evaluation_interval) for i, half in enumerate(halves)]
            done = [future.result() for future in outs]
        for out in done:
            _move_blocks(out, tsdb)
    timings["backfill recording rules"] = time.perf_counter() - began
    began = time.perf_counter()
    found: list[Episode] = []
    alerting = [r for g in yaml.safe_load(files["alerts.yml"])["groups"] for r in g["rules"]]
    with _prometheus(prometheus, tsdb, config, free_port(), log) as url:
        _check_recorded(url, recording[0]["record"], start, end, step)
        for rule in alerting:
            hold = seconds(rule.get("for", "0s") or "0s")
            for labels, times in _query_range(url, rule["expr"], start, end, step).items():
                for e in episodes_of(rule["alert"], [t - EPOCH for t in times], step, hold):
                    found.append(Episode(e.alert, {**dict(labels), **rule.get("labels", {})}, e.active, e.fired,
                                         e.ended))
        series = {}
        for key, expr in (read or {}).items():
            points = [p for values in _range(url, expr, start, end, step).values() for p in values]
            series[key] = sorted((t - EPOCH, v) for t, v in points)
    timings["evaluate alerts"] = time.perf_counter() - began
    return sorted(found, key=lambda e: (e.fired, e.alert)), series

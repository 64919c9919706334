"""An open-loop traffic generator: requests leave on schedule whatever the server does.

A closed loop (send, wait, send) quietly lowers the offered rate when the server slows down,
which hides exactly the overload one wants to see. Here request i of a phase is due at
start + i / rate; if the concurrency limit is reached at that moment, the request is counted
as dropped, never delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from modelmon.contract.names import PREDICT_ROUTE
from modelmon.simulate.scenarios import Phase, Scenario, ScenarioError


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # integer | number | boolean | string
    minimum: float | None = None
    maximum: float | None = None


def served_fields(base_url: str) -> list[FieldSpec]:
    """The served model's inputs, from the request schema in its OpenAPI document."""
    try:
        spec = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
        schema = spec["paths"][PREDICT_ROUTE]["post"]["requestBody"]["content"]["application/json"]["schema"]
        record = schema["oneOf"][0]
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        raise ScenarioError(
            f"Could not read the model's inputs from {base_url}/openapi.json ({type(exc).__name__}); "
            "is `modelmon serve` running there?"
        ) from None
    return [_field(name, prop) for name, prop in record["properties"].items()]


def _field(name: str, prop: dict[str, Any]) -> FieldSpec:
    """A field of the request schema; one that may be null is `anyOf` its type and null."""
    typed = next((p for p in prop.get("anyOf", []) if p.get("type") not in (None, "null")), prop)
    return FieldSpec(name, typed.get("type", "number"), typed.get("minimum"), typed.get("maximum"))


@dataclass
class PhaseResult:
    name: str
    target_rate: float
    planned: int
    started_at: float = 0.0  # wall clock (epoch seconds)
    ended_at: float = 0.0
    sent: int = 0
    ok: int = 0
    rejected: int = 0  # 4xx answers to requests meant to be invalid
    errors: int = 0  # anything else that was not a 200, including connection failures
    dropped: int = 0  # due while the concurrency limit was reached: never sent
    values: dict[str, np.ndarray] = field(default_factory=dict)  # valid rows sent, per feature
    labels_sent: int = 0  # ground truth sent for this phase's predictions
    labels_accepted: int = 0
    labels_refused: int = 0  # refused by the server (unknown id, duplicate) or lost
    # (actual, predicted) of accepted labels: predicted as the prediction answered, actual as sent
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    absolute_error: float = 0.0  # a regressor's: summed over accepted labels

    @property
    def quality(self) -> str:
        """Accuracy of a classifier's accepted labels, MAE of a regressor's; "-" without labels."""
        if not self.labels_accepted:
            return "-"
        if self.confusion:
            right = sum(v for (a, p), v in self.confusion.items() if a == p)
            return f"{right / self.labels_accepted:.1%}"
        return f"MAE {self.absolute_error / self.labels_accepted:.4g}"

    @property
    def elapsed(self) -> float:
        return max(self.ended_at - self.started_at, 1e-9)

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.elapsed


@dataclass
class SimulationResult:
    scenario: str
    phases: list[PhaseResult]

    @property
    def sent(self) -> int:
        return sum(p.sent for p in self.phases)

    def table(self) -> str:
        labels = any(p.labels_sent for p in self.phases)
        head = f"{'phase':<18}{'seconds':>8}{'target/s':>10}{'achieved/s':>12}{'sent':>8}{'ok':>8}" \
               f"{'rejected':>10}{'errors':>8}{'dropped':>9}" + (f"{'labels':>8}{'quality':>14}" if labels else "")
        rows = []
        for p in self.phases:
            row = f"{p.name:<18}{p.elapsed:>8.1f}{p.target_rate:>10.1f}{p.achieved_rate:>12.1f}{p.sent:>8}{p.ok:>8}" \
                  f"{p.rejected:>10}{p.errors:>8}{p.dropped:>9}"
            if labels:
                row += f"{p.labels_accepted:>8}{p.quality:>14}"
            rows.append(row)
        return "\n".join([head, *rows])


def progress_of(phase: Phase) -> np.ndarray:
    return np.arange(phase.requests) / phase.requests


def _values(phase: Phase, fields: list[FieldSpec], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every row of the phase, drawn up front (reproducible for a seed), typed and clipped."""
    progress = progress_of(phase)
    columns = {}
    for spec in fields:
        values = phase.features[spec.name].sample(rng, progress)
        if spec.kind in ("integer", "number") and values.dtype != object:
            if spec.minimum is not None or spec.maximum is not None:
                values = np.clip(values, spec.minimum, spec.maximum)
            if spec.kind == "integer":
                values = np.rint(values)
        columns[spec.name] = values
    return columns


def _json_value(value: Any, kind: str) -> Any:
    """A sampled value as the request sends it: None stays null, numbers typed, categories as
    the served field's type (a YAML `1` for a string input is "1")."""
    if value is None:
        return None
    if kind == "integer":
        number = float(value)
        return int(min(max(number, -(2**63)), 2**63 - 1)) if np.isfinite(number) else number
    if kind == "number":
        return float(value)
    if kind == "boolean":
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
    return str(value)


_INVALID_KINDS = ("missing_field", "wrong_type", "not_finite", "extra_field", "invalid_json", "out_of_bounds")


def _invalid_body(row: dict[str, Any], kind: str, fields: list[FieldSpec]) -> bytes:
    first = fields[0]
    if kind == "missing_field":
        row = {k: v for k, v in row.items() if k != first.name}
    elif kind == "wrong_type":
        row = {**row, first.name: 12345 if first.kind == "string" else "a lot"}
    elif kind == "not_finite":
        return json.dumps({**row, first.name: float("nan")}).encode()  # NaN: not JSON, named by the server
    elif kind == "extra_field":
        row = {**row, "request_source": "simulator"}
    elif kind == "invalid_json":
        return b'{"' + first.name.encode() + b'": '
    elif kind == "out_of_bounds":
        bounded = next((f for f in fields if f.minimum is not None), None)
        if bounded is None or bounded.minimum is None:
            row = {k: v for k, v in row.items() if k != first.name}
        else:
            row = {**row, bounded.name: bounded.minimum - 1}
    return json.dumps(row).encode()


class Simulator:
    def __init__(self, base_url: str | Sequence[str], scenario: Scenario, seed: int = 0, concurrency: int = 64,
                 show_progress: bool = True) -> None:
        """`base_url`: one server, or the replicas of a fleet, which get the requests in turn
        (and share one prediction log, so labels go to the first)."""
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("the simulator needs at least one server URL")
        self.base_urls = [url.rstrip("/") for url in urls]
        self.base_url = self.base_urls[0]
        self.scenario = scenario
        self.concurrency = concurrency
        self.show_progress = show_progress
        self._rng = np.random.default_rng(seed)
        # Labels waiting for their time: (due on the loop clock, seq, request_id, actual, predicted, phase)
        self._due: list[tuple[float, int, str, Any, str, PhaseResult]] = []
        self._seq = 0

    def run(self) -> SimulationResult:
        fields = served_fields(self.base_url)
        self.scenario.check_features([f.name for f in fields])
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._run(fields))
        # Called from a running loop (a notebook): run ours in a thread of its own.
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self._run(fields)).result()

    async def _run(self, fields: list[FieldSpec]) -> SimulationResult:
        results = [PhaseResult(p.name, p.rate, p.requests) for p in self.scenario.phases]
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(httpx.AsyncClient(base_url=url, limits=limits, timeout=30))
                       for url in self.base_urls]
            done = asyncio.Event()
            labeller = asyncio.create_task(self._send_labels(clients[0], done))
            with _Progress(self.show_progress, results) as progress:
                for phase, result in zip(self.scenario.phases, results):
                    await self._phase(clients, phase, fields, result, progress)
            done.set()  # the labels still waiting go out when due, then the run ends
            await labeller
        return SimulationResult(self.scenario.name, results)

    async def _send_labels(self, client: httpx.AsyncClient, done: asyncio.Event, tick: float = 0.1) -> None:
        """Send the labels that are due, in batches, until the scenario ended and none wait."""
        loop = asyncio.get_running_loop()
        while not (done.is_set() and not self._due):
            await asyncio.sleep(tick)
            ready = []
            while self._due and self._due[0][0] <= loop.time():
                ready.append(heapq.heappop(self._due))
            for start in range(0, len(ready), 500):
                await self._post_labels(client, ready[start:start + 500])

    @staticmethod
    async def _post_labels(client: httpx.AsyncClient, batch: list[tuple[float, int, str, Any, str, PhaseResult]]) -> None:
        body = [{"request_id": rid, "actual": actual} for _, _, rid, actual, _, _ in batch]
        for *_, result in batch:
            result.labels_sent += 1
        try:
            response = await client.post("/feedback", json=body)
            results = response.json().get("results", []) if response.status_code in (200, 404, 409) else []
        except (httpx.HTTPError, ValueError):
            results = []
        for (*_, predicted, result), answer in zip(batch, results + [None] * (len(batch) - len(results))):
            if answer is not None and answer.get("status") == "accepted":
                result.labels_accepted += 1
                if isinstance(predicted, str):
                    result.confusion[(answer["actual"], predicted)] += 1
                elif predicted is not None:
                    result.absolute_error += abs(float(answer["actual"]) - float(predicted))
            else:
                result.labels_refused += 1

    async def _phase(self, clients: list[httpx.AsyncClient], phase: Phase, fields: list[FieldSpec],
                     result: PhaseResult, progress: _Progress) -> None:
        columns = _values(phase, fields, self._rng)
        invalid = self._rng.random(phase.requests) < phase.invalid_share
        kinds = self._rng.choice(len(_INVALID_KINDS), size=phase.requests)
        names = [f.name for f in fields]
        kinds_of = {f.name: f.kind for f in fields}
        result.values = {name: columns[name][~invalid] for name in names}
        feedback = phase.feedback
        labelled = np.zeros(phase.requests, dtype=bool)
        if feedback is not None:
            labelled = (self._rng.random(phase.requests) < feedback.share) & ~invalid
            delays = np.clip(feedback.delay.sample(self._rng, progress_of(phase)), 0.0, None)
            actual = feedback.truth.actual(columns, self._rng)
        in_flight: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        start = loop.time()
        result.started_at = time.time()
        progress.start(result)
        for i in range(phase.requests):
            delay = start + i / phase.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= self.concurrency:
                result.dropped += 1
                continue
            row = {n: _json_value(columns[n][i], kinds_of[n]) for n in names}
            body = _invalid_body(row, _INVALID_KINDS[kinds[i]], fields) if invalid[i] else json.dumps(row).encode()
            label = (float(delays[i]), actual[i]) if labelled[i] else None
            client = clients[result.sent % len(clients)]
            task = asyncio.create_task(self._send(client, body, bool(invalid[i]), result, label))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            result.sent += 1
            progress.update(result)
        remaining = start + phase.duration - loop.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        if in_flight:
            await asyncio.gather(*in_flight)
        result.ended_at = time.time()
        progress.update(result, force=True)

    async def _send(self, client: httpx.AsyncClient, body: bytes, meant_invalid: bool, result: PhaseResult,
                    label: tuple[float, Any] | None = None) -> None:
        try:
            response = await client.post(PREDICT_ROUTE, content=body, headers={"content-type": "application/json"})
        except httpx.HTTPError:
            result.errors += 1
            return
        if response.status_code == 200 and not meant_invalid:
            result.ok += 1
            if label is not None:
                answer = response.json()
                delay, actual = label
                self._seq += 1
                predicted = answer.get("label", answer["prediction"])  # a regressor's answer has no label
                heapq.heappush(self._due, (asyncio.get_running_loop().time() + delay, self._seq,
                                           answer["request_id"], actual, predicted, result))
        elif meant_invalid and 400 <= response.status_code < 500:
            result.rejected += 1
        else:
            result.errors += 1


class _Progress:
    """A rich progress bar per phase, or nothing (tests, logs)."""

    def __init__(self, enabled: bool, results: list[PhaseResult]) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._tasks: dict[int, Any] = {}
        self._last = 0.0

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description:<18}"), BarColumn(),
                TextColumn("sent {task.fields[sent]:>6}  ok {task.fields[ok]:>6}  rejected {task.fields[rejected]:>4}"
                           "  errors {task.fields[errors]:>4}  dropped {task.fields[dropped]:>4}  "
                           "{task.fields[rate]:>6.1f}/s"),
                TimeRemainingColumn(),
            )
            self._bar.__enter__()
        return self

    def start(self, result: PhaseResult) -> None:
        if self._bar is not None:
            self._tasks[id(result)] = self._bar.add_task(result.name, total=result.planned, sent=0, ok=0,
                                                          rejected=0, errors=0, dropped=0, rate=0.0)

    def update(self, result: PhaseResult, force: bool = False) -> None:
        now = time.monotonic()
        if self._bar is None or (not force and now - self._last < 0.2):
            return
        self._last = now
        elapsed = max(time.time() - result.started_at, 1e-9) if not force else result.elapsed
        self._bar.update(self._tasks[id(result)], completed=result.sent + result.dropped, sent=result.sent,
                         ok=result.ok, rejected=result.rejected, errors=result.errors, dropped=result.dropped,
                         rate=result.sent / elapsed)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

"""A closed-loop load sender with a known class mix, for exact-count tests."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

SUCCESS = {"items_count": 1800, "customers_count": 1500}  # the stores model says success
NORMAL = {"items_count": 1800, "customers_count": 300}  # ... and normal


@dataclass
class LoadResult:
    sent: int
    failed: int
    success: int
    seconds: float


async def _run(url: str, total: int, every_nth_success: int, concurrency: int) -> LoadResult:
    failed = 0
    queue = iter(range(total))
    start = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        async def worker() -> None:
            nonlocal failed
            for i in queue:
                body = SUCCESS if i % every_nth_success == 0 else NORMAL
                try:
                    response = await client.post("/predict", json=body)
                    failed += response.status_code != 200
                except httpx.HTTPError:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    success = len(range(0, total, every_nth_success))
    return LoadResult(total, failed, success, time.perf_counter() - start)


def send_load(url: str, total: int, every_nth_success: int = 3, concurrency: int = 32) -> LoadResult:
    return asyncio.run(_run(url, total, every_nth_success, concurrency))


def scrape_seconds(url: str, times: int = 5) -> float:
    """Median time of a full /metrics scrape."""
    durations = []
    with httpx.Client() as client:
        for _ in range(times):
            start = time.perf_counter()
            assert client.get(f"{url}/metrics").status_code == 200
            durations.append(time.perf_counter() - start)
    return sorted(durations)[len(durations) // 2]

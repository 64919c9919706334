"""A load sender with a known class mix, for exact-count tests.

Plain http.client connections on threads: several times faster than an async httpx client
at high concurrency, so the server, not the sender, is what gets loaded.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

SUCCESS = {"items_count": 1800, "customers_count": 1500}  # the stores model says success
NORMAL = {"items_count": 1800, "customers_count": 300}  # ... and normal
_BODIES = {True: json.dumps(SUCCESS).encode(), False: json.dumps(NORMAL).encode()}


@dataclass
class LoadResult:
    sent: int
    failed: int
    success: int
    seconds: float


def send_load(url: str, total: int, every_nth_success: int = 3, concurrency: int = 32) -> LoadResult:
    """Send `total` single-row POSTs, one success in `every_nth_success`, `concurrency` at a time."""
    parts = urlsplit(url)
    numbers = iter(range(total))
    lock = threading.Lock()
    failed = 0

    def worker() -> None:
        nonlocal failed
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        while True:
            with lock:
                i = next(numbers, None)
            if i is None:
                break
            try:
                connection.request("POST", "/predict", _BODIES[i % every_nth_success == 0], headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            if not ok:
                with lock:
                    failed += 1
        connection.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    success = len(range(0, total, every_nth_success))
    return LoadResult(total, failed, success, time.perf_counter() - start)


def scrape_seconds(url: str, times: int = 5) -> float:
    """Median time of a full /metrics scrape."""
    durations = []
    with httpx.Client() as client:
        for _ in itertools.repeat(None, times):
            start = time.perf_counter()
            assert client.get(f"{url}/metrics").status_code == 200
            durations.append(time.perf_counter() - start)
    return sorted(durations)[len(durations) // 2]

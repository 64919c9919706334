"""A small paced sender for integration tests (the product's simulator is richer)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import numpy as np

Sampler = Callable[[np.random.Generator], dict[str, int]]


def stores(items: tuple[float, float], customers: tuple[float, float]) -> Sampler:
    def sample(rng: np.random.Generator) -> dict[str, int]:
        return {
            "items_count": int(max(0, round(rng.normal(*items)))),
            "customers_count": int(max(0, round(rng.normal(*customers)))),
        }
    return sample


NORMAL = stores((1782, 300), (786, 265))
CUSTOMER_DROP = stores((1782, 300), (550, 150))
WORKSHOP_FAULTY = stores((300, 100), (1000, 100))


def send(app: str, sampler: Sampler, seconds: float, rate: float = 25.0, seed: int = 0,
         until: Callable[[], bool] | None = None, check_every: float = 2.0) -> int:
    """Send single-row POSTs at `rate` per second for `seconds`, or until `until()` is true."""
    rng = np.random.default_rng(seed)
    sent = 0
    start = time.monotonic()
    next_check = start + check_every
    with httpx.Client(base_url=app, timeout=5) as client:
        while (now := time.monotonic()) - start < seconds:
            response = client.post("/predict", json=sampler(rng))
            assert response.status_code == 200, response.text
            sent += 1
            if until is not None and now >= next_check:
                if until():
                    break
                next_check = now + check_every
            delay = start + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return sent

"""Numeric helpers for building cases: traffic that puts a statistic just past or just inside
its threshold, and what a window or a histogram quantile reads from counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from modelmon.contract.buckets import LATENCY_BUCKETS
from modelmon.model.reference import ReferenceProfile
from modelmon.ruletests.inputs import p_in_bucket, slow_bucket_index
from modelmon.stats.drift import ks_distance, psi

FAST_BUCKET = 3  # answers within 5 ms


def per_step_count(count: float, window: float, interval: float) -> float:
    """Per-replica count each scrape so that both replicas add up to `count` per window."""
    return count * interval / window / 2


def _solve(f: Any, target: float, low: float, high: float) -> float | None:
    """x in [low, high] with f(x) = target for an increasing f, by bisection; None if out of reach."""
    if not f(low) <= target <= f(high):
        return None
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if f(mid) < target else (low, mid)
    return (low + high) / 2


def _tilted(reference: np.ndarray, signs: np.ndarray, statistic: Any, target: float) -> np.ndarray | None:
    """Bin shares `reference * (1 + sign * x)`, renormalised, with x chosen so that
    `statistic(shares)` is `target` (None if no x in [0, 1) reaches it)."""

    def shares(x: float) -> np.ndarray:
        raw = reference * (1 + signs * x)
        return np.asarray(raw / raw.sum())

    x = _solve(lambda x: statistic(shares(x)), target, 0.0, 0.999)
    return None if x is None else shares(x)


def psi_bins(reference: np.ndarray, target: float) -> np.ndarray | None:
    """Bin shares whose PSI against `reference` is `target` while their CDF stays close to it:
    every other bin that holds values up by a factor, the rest down (KS at most one bin's
    change; empty bins, as a discrete input has, are skipped so the signs still alternate)."""
    held = np.flatnonzero(reference > 0)
    signs = np.zeros(len(reference))
    signs[held] = np.where(np.arange(held.size) % 2 == 0, 1.0, -1.0)
    return _tilted(reference, signs, lambda shares: psi(shares, reference), target)


def ks_bins(reference: np.ndarray, target: float) -> np.ndarray | None:
    """Bin shares whose KS distance from `reference` is `target`: the lower half of the bins
    down by a factor, the upper half up (the smallest PSI for that KS)."""
    signs = np.where(np.arange(len(reference)) < len(reference) // 2, -1.0, 1.0)
    return _tilted(reference, signs, lambda shares: ks_distance(np.cumsum(shares), np.cumsum(reference)), target)


def ks_alone_counts(reference: np.ndarray, ks_threshold: float, psi_threshold: float) -> np.ndarray | None:
    """Bins with KS just past its threshold and PSI under its own, if any such are near."""
    # Nearest first: the count KS needs to be evidence then exceeds the traffic guard.
    candidates = [ks_bins(reference, factor * ks_threshold) for factor in (1.1, 1.05, 1.25, 1.5, 1.02)]
    found = [b for b in candidates if b is not None]
    alone = [b for b in found if psi(b, reference) <= psi_threshold]
    return alone[0] if alone else (found[-1] if found else None)


def class_shares_at(profile: ReferenceProfile, target_psi: float) -> dict[str, float] | None:
    """Class shares with PSI `target_psi` against the priors, the positive class (if any) above
    its prior so the low-rate alert stays out of it: every share moved toward one class."""
    priors = np.array([c.prior for c in profile.classes])
    up = [c.label for c in profile.classes].index(profile.positive.label) if profile.positive else 0

    def shares(x: float) -> np.ndarray:
        out = priors * (1 - x)
        out[up] += x
        return out

    x = _solve(lambda x: psi(shares(x), priors), target_psi, 0.0, 0.999)
    return None if x is None else {c.label: float(v) for c, v in zip(profile.classes, shares(x), strict=True)}


def just_past(threshold: float, above: bool) -> float:
    """Just past a threshold: within a factor of two of it, so a doubled or halved one errs."""
    return 1.5 * threshold if above else 0.75 * threshold


def just_inside(threshold: float, above: bool, ceiling: float = 1.0) -> float:
    """Just inside: within a factor of two, and under `ceiling` (ratios stay ratios)."""
    return 0.75 * threshold if above else min(1.5 * threshold, (ceiling + threshold) / 2)


def latency_bucket(threshold: float, past: bool) -> int:
    """The first bucket whose p99 passes `threshold`, or the last whose p99 does not."""
    if past:
        return slow_bucket_index(threshold)
    inside = [k for k in range(1, len(LATENCY_BUCKETS)) if p_in_bucket(k, 0.99) <= threshold]
    return inside[-1] if inside else FAST_BUCKET


def first_of(candidates: Iterable[Any]) -> Any:
    return next((c for c in candidates if c is not None), None)


def targets(threshold: float, past: bool, far: bool) -> list[float]:
    """Values of a statistic that alerts above `threshold`: just past it, far past it (where
    the traffic guard, not the evidence, decides), or just inside it."""
    if not past:
        return [just_inside(threshold, True, 1e9)]
    return [m * threshold for m in (8.0, 4.0, 2.5, 2.0)] if far else [just_past(threshold, True)]


def window_increase(before: float, after: float, change: int, end: int, window: int) -> float:
    """Increase over the last `window` steps up to step `end`, of a counter that grows by
    `before` per step up to step `change`, then by `after`."""

    def value(k: int) -> float:
        return before * min(k, change) + after * max(0, k - change)

    return value(end) - value(max(0, end - window))


def quantile_from_counts(q: float, bounds: Sequence[float], counts: np.ndarray) -> float:
    """Prometheus' histogram_quantile over per-bucket counts (the last bucket is +Inf)."""
    cumulative = np.cumsum(counts)
    rank = float(q * cumulative[-1])
    b = int(np.searchsorted(cumulative, rank, side="left"))
    if b >= len(bounds):
        return float(bounds[-1])
    lower = 0.0 if b == 0 else float(bounds[b - 1])
    below = 0.0 if b == 0 else float(cumulative[b - 1])
    return lower + (float(bounds[b]) - lower) * (rank - below) / (float(cumulative[b]) - below)


def steps_of(duration: float, interval: float) -> int | None:
    steps = duration / interval
    return round(steps) if abs(steps - round(steps)) < 1e-9 else None

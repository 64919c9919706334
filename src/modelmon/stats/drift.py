"""Drift statistics in Python: the reference the Prometheus rules are tested against.

The rules compute the same numbers inside Prometheus (so they add up across replicas); these
functions define what "the same" means, bin for bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np

Shares: TypeAlias = Sequence[float] | np.ndarray  # a sequence of shares or CDF points

# Added to both shares of a bin so an empty bin gives a large but finite PSI term.
PSI_EPSILON = 1e-4


def bin_shares(cdf: Shares) -> np.ndarray:
    """Shares of the bins (0, b1], (b1, b2], ... from the CDF read at b1, b2, ..."""
    cdf = np.asarray(cdf, dtype=float)
    return np.diff(cdf, prepend=0.0)


def psi(live: Shares, reference: Shares, eps: float = PSI_EPSILON) -> float:
    """Population stability index over bin shares."""
    live = np.asarray(live, dtype=float)
    reference = np.asarray(reference, dtype=float)
    return float(np.sum((live - reference) * np.log((live + eps) / (reference + eps))))


def ks_distance(live_cdf: Shares, reference_cdf: Shares) -> float:
    """Largest gap between two CDFs read at the same points."""
    return float(np.max(np.abs(np.asarray(live_cdf, dtype=float) - np.asarray(reference_cdf, dtype=float))))


def total_variation(live: Shares, reference: Shares) -> float:
    """Total variation distance between two sets of shares: the share of rows that would
    have to change category to turn one into the other."""
    return float(0.5 * np.sum(np.abs(np.asarray(live, dtype=float) - np.asarray(reference, dtype=float))))

"""How much a window's count proves: the confidence bounds and critical values that the rate
and drift alerts weigh their statistics with, in Python.

A threshold on a statistic alone (success rate under 20 %, PSI over 0.2) has to be set loose
enough for the quietest window (most windows of 50 rows drawn from the training distribution
itself show a PSI over 0.1: tests/test_evidence.py), and then it is slow on busy ones. So each of these alerts asks two things: the effect is past
its threshold (what matters to the team), *and* the window holds enough rows for the effect
not to be chance, at the `confidence` in the settings:

- a share (the positive class's): its Wilson upper bound for the window's n is under the floor;
- KS between the live sample (n values) and the training sample (m): over the two-sample
  critical value c(a) * sqrt(1/n + 1/m);
- PSI over B bins: under no drift, PSI * nm/(n+m) is about chi-square with B - 1 degrees of
  freedom (PSI is the symmetric Kullback-Leibler divergence, whose second-order term is the
  chi-square statistic), so PSI must exceed chi2(B - 1) * (1/n + 1/m).

The rules compute these in PromQL from the counters (so they add up across replicas); these
functions define what they must equal, and `needed` turns them into the smallest count at
which a given effect becomes evidence, which is what the promtool cases are built around.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist


def z_of(confidence: float) -> float:
    """One-sided standard normal quantile: 3.09 for 0.999."""
    return NormalDist().inv_cdf(confidence)


def wilson_upper(p: float, n: float, z: float) -> float:
    """Upper Wilson score bound of a share `p` observed on `n` rows."""
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (centre + spread) / (1 + z2 / n)


def ks_coefficient(confidence: float) -> float:
    """c(a) of the two-sample Kolmogorov-Smirnov critical value, a = 1 - confidence."""
    return math.sqrt(-math.log((1 - confidence) / 2) / 2)


def ks_critical(n: float, m: float, confidence: float) -> float:
    """The KS distance that n live values must exceed against m training values."""
    return ks_coefficient(confidence) * math.sqrt(1 / n + 1 / m)


def chi2_quantile(df: int, confidence: float) -> float:
    """Chi-square quantile (SciPy, imported when a rule is first rendered, not at start)."""
    from scipy.stats import chi2

    return float(chi2.ppf(confidence, df))


def psi_coefficient(bins: int, confidence: float) -> float:
    """chi2(bins - 1) at `confidence`: PSI's critical value is this times (1/n + 1/m)."""
    return chi2_quantile(max(bins - 1, 1), confidence)


def psi_critical(n: float, m: float, bins: int, confidence: float) -> float:
    return psi_coefficient(bins, confidence) * (1 / n + 1 / m)


def needed(passes: Callable[[float], bool], most: float = 1e12) -> float | None:
    """The smallest count n >= 1 (to a part in 1e9) at which `passes(n)` holds, for a test
    that keeps holding with more rows; None if it never does."""
    if not passes(most):
        return None
    if passes(1.0):
        return 1.0
    low, high = 1.0, most
    while high - low > 1e-9 * high:
        mid = math.sqrt(low * high) if high / low > 4 else (low + high) / 2
        low, high = (low, mid) if passes(mid) else (mid, high)
    return high

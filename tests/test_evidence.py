"""The evidence behind the rate and drift alerts (modelmon.stats.evidence): each bound and critical
value against its definition or SciPy, and against chance: on samples drawn from the training
distribution itself, an alert at confidence c fires in about 1 - c of the windows."""

import math

import numpy as np
import pytest
from scipy import special

from modelmon.stats.drift import psi
from modelmon.stats.evidence import (
    ks_coefficient,
    ks_critical,
    needed,
    psi_critical,
    wilson_upper,
    z_of,
)


@pytest.mark.parametrize("p, n", [(0.0, 10), (0.05, 40), (0.25, 500), (0.9, 100)])
def test_the_wilson_bound_is_where_the_score_test_stops_rejecting(p, n):
    """The upper Wilson bound u solves (u - p) / sqrt(u (1 - u) / n) = z."""
    z = z_of(0.999)
    u = wilson_upper(p, n, z)
    assert p < u < 1
    assert (u - p) / math.sqrt(u * (1 - u) / n) == pytest.approx(z, rel=1e-9)


def test_the_ks_coefficient_is_the_kolmogorov_quantile():
    for confidence in (0.95, 0.99, 0.999):
        assert ks_coefficient(confidence) == pytest.approx(special.kolmogi(1 - confidence), rel=0.01)


def test_needed_finds_the_smallest_count_that_passes():
    floor, z = 0.2, z_of(0.999)
    n = needed(lambda n: wilson_upper(0.15, n, z) < floor)
    assert n is not None
    assert wilson_upper(0.15, n, z) < floor <= wilson_upper(0.15, n * 0.999, z)
    assert needed(lambda n: wilson_upper(0.25, n, z) < floor) is None  # over the floor: never evidence


def _rank_bins(sample: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Shares of `sample` in the deciles of `reference` (what the rank histograms count)."""
    edges = np.quantile(reference, np.linspace(0.1, 0.9, 9))
    return np.bincount(np.searchsorted(edges, sample, side="right"), minlength=10) / sample.size


def _windows_past(n: int, confidence: float, trials: int, seed: int) -> tuple[float, float, float]:
    """No drift: a training sample of m = 896 and a live window of n, both from the same
    normal, `trials` times. The shares of windows whose PSI passes its critical value, whose
    KS passes its own, and whose PSI passes a fixed 0.1."""
    rng = np.random.default_rng(seed)
    m = 896
    psi_hits = ks_hits = naive = 0
    for _ in range(trials):
        reference = rng.normal(0, 1, m)
        live = rng.normal(0, 1, n)
        value = psi(_rank_bins(live, reference), _rank_bins(reference, reference))
        psi_hits += value > psi_critical(n, m, 10, confidence)
        naive += value > 0.1
        ref_cdf = np.sort(reference)
        grid = np.concatenate([ref_cdf, live])
        ks = np.max(np.abs(np.searchsorted(np.sort(live), grid, side="right") / n
                           - np.searchsorted(ref_cdf, grid, side="right") / m))
        ks_hits += ks > ks_critical(n, m, confidence)
    return psi_hits / trials, ks_hits / trials, naive / trials


@pytest.mark.parametrize("n", [100, 300, 1000])
def test_psi_and_ks_critical_values_hold_chance_to_their_confidence(n):
    """From ten values per bin on (the `min_per_bin` guard), PSI over its critical value and
    KS over its own at 99 %: each in at most ~1 % of 2,000 windows (2.5 % allowed for the
    approximations)."""
    psi_share, ks_share, _ = _windows_past(n, 0.99, 2000, seed=n)
    assert psi_share <= 0.025
    assert ks_share <= 0.025


def test_under_ten_values_per_bin_psi_cries_wolf_which_is_why_the_guard_exists():
    """At n = 30 an empty bin's smoothed log term alone passes the critical value: the
    chi-square approximation fails, so drift alerts need `min_per_bin` values per bin. And a
    fixed PSI threshold of 0.1, blind to n, fires in most windows of 50."""
    psi_share, _, _ = _windows_past(30, 0.99, 1000, seed=1)
    assert psi_share > 0.1
    _, _, naive = _windows_past(50, 0.99, 1000, seed=2)
    assert naive > 0.5


def test_the_wilson_bound_covers_the_true_share():
    """At the workshop's 25 % success rate, a 1-minute window of 100 rows at 99.9 %: the
    bound falls under 20 % in no more than 0.1 % of windows; a naive `rate < 20 %` in ~13 %."""
    rng = np.random.default_rng(3)
    z = z_of(0.999)
    shares = rng.binomial(100, 0.25, 200_000) / 100
    bounds = np.array([wilson_upper(p, 100, z) for p in np.unique(shares)])
    under = dict(zip(np.unique(shares), bounds < 0.2, strict=True))
    fired = np.mean([under[p] for p in shares])
    assert fired <= 0.001
    assert np.mean(shares < 0.2) > 0.08

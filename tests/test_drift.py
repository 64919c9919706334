"""The Python drift statistics (the promtool cases' reference) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from modelmon.stats.drift import PSI_EPSILON, bin_shares, ks_distance, psi


def _random_shares(rng: np.random.Generator, bins: int, empty: int) -> np.ndarray:
    counts = rng.integers(0, 50, bins).astype(float)
    counts[rng.choice(bins, empty, replace=False)] = 0.0  # empty bins
    counts[counts.argmax()] += 1  # never all empty
    return counts / counts.sum()


@pytest.mark.parametrize("seed", range(25))
def test_psi_is_the_symmetrised_kullback_leibler_divergence(seed):
    """PSI with smoothing e is KL(l+e || r+e) + KL(r+e || l+e), written with SciPy's rel_entr."""
    rng = np.random.default_rng(seed)
    live, reference = _random_shares(rng, 10, seed % 4), _random_shares(rng, 10, seed % 3)
    expected = float(np.sum(special.rel_entr(live + PSI_EPSILON, reference + PSI_EPSILON)
                            + special.rel_entr(reference + PSI_EPSILON, live + PSI_EPSILON)))
    assert psi(live, reference) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("seed", range(25))
def test_ks_distance_equals_scipy_two_sample_ks_on_the_binned_samples(seed):
    """Values at each bin's upper bound (ties everywhere): SciPy's KS statistic of the two
    samples is the largest gap of their CDFs, which is what ks_distance reads at the bounds."""
    rng = np.random.default_rng(100 + seed)
    bounds = np.round(np.linspace(0.1, 1.0, 10), 1)
    live_counts = rng.integers(0, 30, 10)
    ref_counts = rng.integers(0, 30, 10)
    live_counts[seed % 10] += 1
    ref_counts[(seed + 3) % 10] += 1
    live_sample, ref_sample = np.repeat(bounds, live_counts), np.repeat(bounds, ref_counts)
    expected = stats.ks_2samp(live_sample, ref_sample).statistic
    got = ks_distance(np.cumsum(live_counts) / live_counts.sum(), np.cumsum(ref_counts) / ref_counts.sum())
    assert got == pytest.approx(expected, abs=1e-12)


def test_bin_shares_invert_the_cdf():
    shares = np.array([0.0, 0.25, 0.0, 0.5, 0.25])
    assert bin_shares(np.cumsum(shares)) == pytest.approx(shares)


def test_identical_distributions_have_no_drift_and_an_empty_bin_stays_finite():
    reference = np.full(10, 0.1)
    assert psi(reference, reference) == 0.0
    live = np.array([0.0, *[0.9 / 8] * 8, 0.1])
    assert np.isfinite(psi(live, reference)) and psi(live, reference) > 0.2

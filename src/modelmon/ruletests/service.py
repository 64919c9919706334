"""Cases of the per-input drift alerts and of the service alerts (down, errors, latency,
invalid input).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from modelmon.contract import alerts as A
from modelmon.contract.buckets import QUANTILE_BUCKETS
from modelmon.contract.names import bound_label
from modelmon.model.reference import ReferenceProfile
from modelmon.rules.alerts import Alert
from modelmon.rules.series import JOB, Names
from modelmon.ruletests.case import INSTANCES, REPLICAS, Case
from modelmon.ruletests.inputs import drift_past, mix_of, p_in_bucket, slow_bucket_index, standard_inputs
from modelmon.settings import Settings, seconds
from modelmon.stats.drift import bin_shares, ks_distance, psi


def feature_drift_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float, end: float,
                         by_name: Mapping[str, Alert], url: str) -> list[Case]:
    """The first numeric input drifts, the others stay as in training: the statistics of the
    summed replicas, the alert per feature."""
    if not profile.features:
        return []
    n = Names.of(s)
    hold = seconds(s.alert_for)
    labels = {"model": profile.model}
    mix = mix_of(profile, 40.0)
    drifted = profile.features[0]
    drift = Case(f"'{drifted.name}' drifts: KS and PSI of the summed replicas, alert per feature", s, steps, interval)
    counts = drift_past(profile, drifted.name, s)
    standard_inputs(drift, profile, mix, feature_counts={drifted.name: counts})
    live_cdf = np.cumsum(counts) / counts.sum()
    expected_psi = psi(bin_shares(live_cdf), bin_shares(drifted.quantile_reference))
    expected_ks = ks_distance(live_cdf, drifted.quantile_reference)
    flabels = {**labels, "feature": drifted.name}
    for bound, value in zip(QUANTILE_BUCKETS, live_cdf):
        drift.expect(n.live_cdf, end, {**flabels, "le": bound_label(bound)}, float(value))
    drift.expect(n.ks, end, flabels, expected_ks)
    drift.expect(n.psi, end, flabels, expected_psi)
    drift.expect(n.feature_increase, end, flabels, REPLICAS * counts.sum() * seconds(s.drift_window) / interval)
    drift.alert(by_name[A.FEATURE_DRIFT], hold / 2, [], url)
    drift.alert(by_name[A.FEATURE_DRIFT], end, [(flabels, expected_psi)], url)
    return [drift]


def service_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float, end: float,
                   by_name: Mapping[str, Alert], url: str) -> list[Case]:
    """Invalid input, server errors and latency each past its threshold; a replica down."""
    n = Names.of(s)
    labels = {"model": profile.model}
    mix = mix_of(profile, 40.0)
    total = sum(mix.values())
    # Invalid input, server errors and latency, each past its threshold.
    broken = Case("invalid input, 5xx answers and slow answers fire their alerts", s, steps, interval)
    # Each ratio halfway from its threshold to 1; every answer in a bucket past the p99 threshold.
    invalid_ratio = (1 + s.invalid_ratio_threshold) / 2
    error_ratio = (1 + s.error_ratio_threshold) / 2
    slow = slow_bucket_index(s.latency_p99_seconds)
    standard_inputs(broken, profile, mix, invalid_per_step=total * invalid_ratio / (1 - invalid_ratio),
                     errors_per_step=total * error_ratio, slow_bucket=slow)
    broken.expect(n.invalid_ratio, end, labels, invalid_ratio)
    broken.expect(n.error_ratio, end, {"job": JOB}, error_ratio)
    for q in (50, 95, 99):
        broken.expect(n.latency(q), end, {"job": JOB}, p_in_bucket(slow, q / 100))
    broken.alert(by_name[A.INVALID_INPUT_RATE], end, [(labels, invalid_ratio)], url)
    broken.alert(by_name[A.SERVER_ERRORS], end, [({"job": JOB}, error_ratio)], url)
    broken.alert(by_name[A.HIGH_LATENCY], end, [({"job": JOB}, p_in_bucket(slow, 0.99))], url)

    # One replica down: fires after down_for, for that replica only.
    down = Case("a replica that cannot be scraped fires ModelServerDown after its for", s, steps, interval)
    standard_inputs(down, profile, mix)
    down.series = [x for x in down.series if not x["series"].startswith("up{")]
    down.gauge("up", 0.0, instances=INSTANCES[:1])
    down.gauge("up", 1.0, instances=INSTANCES[1:])
    down.alert(by_name[A.SERVER_DOWN], seconds(s.down_for) / 2, [], url)
    down.alert(by_name[A.SERVER_DOWN], seconds(s.down_for) + 3 * interval,
               [({"job": JOB, "instance": INSTANCES[0]}, 0.0)], url)
    return [broken, down]

"""The bucket bounds of every histogram modelmon exports, written once: the code that observes
into them, the profile that records their reference shares, and the rules and rule tests that
read them all take them from here.

May import: nothing.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BATCH_BUCKETS", "ERROR_MULTIPLES", "FEEDBACK_DELAY_BUCKETS", "LATENCY_BUCKETS", "PROBABILITY_BUCKETS",
    "QUANTILE_BUCKETS",
]

# The rank histogram: F_ref(x) of each live value. Uniform when nothing drifted.
QUANTILE_BUCKETS: Final[tuple[float, ...]] = tuple(round(0.1 * i, 1) for i in range(1, 11))
# A classifier's class probabilities.
PROBABILITY_BUCKETS: Final[tuple[float, ...]] = tuple(round(0.05 * i, 2) for i in range(1, 21))
# Request and model-call latency, seconds.
LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Rows per model call.
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
# A regressor's absolute error, in multiples of its training MAE.
ERROR_MULTIPLES: Final = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# Seconds from a prediction to its label.
FEEDBACK_DELAY_BUCKETS: Final = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400,
                                 30 * 86400)

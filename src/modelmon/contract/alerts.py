"""The names of the alerts modelmon generates: one constant each, read by the rules, their
promtool cases, the Alertmanager routing and the Kubernetes objects.

What each alert means, and when it fires, is said where its rule is built (`modelmon.rules`).

May import: nothing.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALERTS", "CONCEPT_DRIFT", "ESTIMATED_QUALITY_DROP", "FEATURE_DRIFT", "FEATURE_MISSING", "HIGH_LATENCY",
    "INVALID_INPUT_RATE", "LOW_POSITIVE_RATE", "PREDICTION_DRIFT", "QUALITY_DROP", "SERVER_DOWN", "SERVER_ERRORS",
]

SERVER_DOWN: Final = "ModelServerDown"
SERVER_ERRORS: Final = "ModelServerErrors"
HIGH_LATENCY: Final = "ModelHighLatency"
INVALID_INPUT_RATE: Final = "ModelInvalidInputRate"
LOW_POSITIVE_RATE: Final = "ModelLowPositiveRate"
FEATURE_DRIFT: Final = "ModelFeatureDrift"
FEATURE_MISSING: Final = "ModelFeatureMissing"
PREDICTION_DRIFT: Final = "ModelPredictionDrift"
QUALITY_DROP: Final = "ModelQualityDrop"
ESTIMATED_QUALITY_DROP: Final = "ModelEstimatedQualityDrop"
CONCEPT_DRIFT: Final = "ModelConceptDrift"

ALERTS: Final = (SERVER_DOWN, SERVER_ERRORS, HIGH_LATENCY, INVALID_INPUT_RATE, LOW_POSITIVE_RATE, FEATURE_DRIFT,
                 FEATURE_MISSING, PREDICTION_DRIFT, QUALITY_DROP, ESTIMATED_QUALITY_DROP, CONCEPT_DRIFT)

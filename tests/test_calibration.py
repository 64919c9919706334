"""Calibration and the expected confusion matrix against a direct, row-by-row CBPE."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelmon.model.profile import HELD_OUT_SHARE, build_profile, held_out
from modelmon.model.reference import ReferenceProfile
from modelmon.stats import calibration

from .conftest import STORES_CSV


def _cbpe_by_row(predicted: np.ndarray, calibrated: np.ndarray, positive: int) -> dict[str, float]:
    """NannyML's CBPE for one positive class, written out row by row: the expected accuracy is
    the mean probability of the predicted class; expected true positives are the positive
    probabilities of the rows predicted positive, expected positives all rows' positive ones."""
    n = len(predicted)
    accuracy = sum(calibrated[i, predicted[i]] for i in range(n)) / n
    tp = sum(calibrated[i, positive] for i in range(n) if predicted[i] == positive)
    predicted_positive = sum(1 for i in range(n) if predicted[i] == positive)
    actual_positive = sum(calibrated[i, positive] for i in range(n))
    precision, recall = tp / predicted_positive, tp / actual_positive
    return {"accuracy": accuracy, "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall)}


def _overconfident(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose true P(class 1) is sigmoid(z), reported by a model as sigmoid(3 z)."""
    z = rng.normal(0, 1.5, n)
    truth = 1 / (1 + np.exp(-z))
    actual = (rng.random(n) < truth).astype(int)
    reported = 1 / (1 + np.exp(-3 * z))
    return np.column_stack([1 - reported, reported]), actual, truth


def test_isotonic_calibration_repairs_an_overconfident_model():
    rng = np.random.default_rng(0)
    proba, actual, _ = _overconfident(rng, 20_000)
    fitted = calibration.fit(proba, actual, ("no", "yes"), "test", positive=1)
    assert fitted.ece_before > 0.05
    assert fitted.ece_after < fitted.ece_before / 3
    fresh, _, truth = _overconfident(rng, 5_000)
    mapped = fitted.apply(fresh)
    np.testing.assert_allclose(mapped.sum(axis=1), 1.0)
    assert np.abs(mapped[:, 1] - truth).mean() < 0.03 < np.abs(fresh[:, 1] - truth).mean()


def test_the_expected_confusion_matrix_gives_cbpe_and_each_row_adds_one():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet([1, 1, 1], 500)
    predicted = np.where(rng.random(500) < 0.9, proba.argmax(axis=1), rng.integers(0, 3, 500))
    matrix = calibration.expected_confusion(predicted, proba)
    assert matrix.sum() == pytest.approx(500)
    for a in range(3):
        np.testing.assert_allclose(matrix[a], proba[predicted == a].sum(axis=0))
    estimated = calibration.quality_of(matrix, positive=2)
    direct = _cbpe_by_row(predicted, proba, positive=2)
    assert estimated.accuracy == pytest.approx(direct["accuracy"])
    assert estimated.precision == pytest.approx(direct["precision"])
    assert estimated.recall == pytest.approx(direct["recall"])
    assert estimated.f1 == pytest.approx(direct["f1"])


def test_on_calibrated_probabilities_the_estimate_meets_the_realized_accuracy():
    """Labels drawn from the calibrated probabilities, inputs shifted to a harder region: the
    estimate follows the drop (CBPE's point) to within sampling error."""
    rng = np.random.default_rng(2)
    proba, actual, _ = _overconfident(rng, 20_000)
    fitted = calibration.fit(proba, actual, ("no", "yes"), "test", positive=1)
    z = rng.normal(0, 0.4, 5_000)  # near the boundary: many uncertain rows
    truth = 1 / (1 + np.exp(-z))
    reported = 1 / (1 + np.exp(-3 * z))
    live = np.column_stack([1 - reported, reported])
    labels = (rng.random(z.size) < truth).astype(int)
    predicted = live.argmax(axis=1)
    estimated = calibration.quality_of(calibration.expected_confusion(predicted, fitted.apply(live)), 1)
    realized = calibration.quality_of(calibration.confusion(predicted, labels, 2), 1)
    assert realized.accuracy < 0.65
    assert abs(estimated.accuracy - realized.accuracy) < 0.03
    assert abs(estimated.accuracy - calibration.quality_of(
        calibration.expected_confusion(predicted, live), 1).accuracy) > 0.1  # raw probabilities would not


def test_ece_of_perfect_and_of_always_wrong_confidence():
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    assert calibration.expected_calibration_error(proba, proba.argmax(axis=1)) == pytest.approx(
        (0.1 + 0.2 + 0.3) / 3)
    assert calibration.expected_calibration_error(proba, 1 - proba.argmax(axis=1)) == pytest.approx(
        (0.9 + 0.8 + 0.7) / 3)


def test_the_bundled_profile_is_calibrated_on_fresh_rows_and_round_trips(stores_profile):
    c = stores_profile.calibration
    assert c is not None and c.classes == ("normal", "success") and c.rows == 2000
    assert c.ece_after < c.ece_before
    assert 0.9 < c.reference.accuracy < 1 and c.reference.f1 is not None
    again = ReferenceProfile.from_dict(json.loads(stores_profile.to_json()))
    assert again.calibration == c


def test_without_calibration_data_the_profile_holds_out_a_documented_share(stores_model):
    data = pd.read_csv(STORES_CSV)
    mask = held_out(len(data))
    assert mask.sum() == round(HELD_OUT_SHARE * len(data)) and (mask == held_out(len(data))).all()
    profile = build_profile(stores_model, data, target="success")
    assert profile.calibration is not None and profile.calibration.rows == mask.sum()
    assert "held-out 30%" in profile.calibration.source

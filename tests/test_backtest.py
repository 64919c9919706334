"""The parts of `modelmon backtest` that are plain Python: Prometheus' `for`, the order in
which recording rules can be backfilled, and how firings are scored against phases. The
whole backtest, against real promtool and Prometheus, is in tests/integration/test_backtest.py."""

import pytest

from modelmon.backtest.engine import _levels, episodes_of
from modelmon.backtest.result import Episode, PhaseSpan, Result


def test_for_fires_after_holding_and_an_evaluation_without_the_series_ends_it():
    step = 5.0
    held = [100.0 + step * k for k in range(13)]  # 100 .. 160: holds for 60 s
    again = [300.0 + step * k for k in range(5)]  # 300 .. 320: 20 s, under its for
    found = episodes_of("A", held + again, step, hold=60.0)
    assert [(e.active, e.fired, e.ended) for e in found] == [(100.0, 160.0, 160.0)]
    assert episodes_of("A", held[:-1], step, hold=60.0) == []  # one evaluation short of its for
    assert [e.fired for e in episodes_of("A", again, step, hold=0.0)] == [300.0]


def test_recording_rules_are_backfilled_after_what_they_read():
    rules = [{"record": "a", "expr": "sum(x)"}, {"record": "b", "expr": "a / 2"},
             {"record": "c", "expr": "sum(y)"}, {"record": "d", "expr": "b + c"}]
    assert [[r["record"] for r in level] for level in _levels(rules)] == [["a", "c"], ["b"], ["d"]]


def _result(episodes):
    phases = [PhaseSpan("normal", 0, 86_400, True), PhaseSpan("drop", 86_400, 90_000, False),
              PhaseSpan("after", 90_000, 2 * 86_400, True)]
    return Result("s", "production", 2 * 86_400, phases, episodes, rows=0, labels=0)


def test_a_firing_in_a_healthy_phase_is_a_false_alarm_unless_the_windows_still_hold_the_change():
    result = _result([
        Episode("ModelFeatureDrift", {"feature": "x"}, 3_000, 3_060, 3_500),  # in normal: false alarm
        Episode("ModelLowPositiveRate", {}, 86_460, 86_520, 90_100),  # in drop: a detection
        Episode("ModelFeatureDrift", {"feature": "x"}, 90_100, 90_200, 90_300),  # 200 s after the drop: grace
        Episode("ModelFeatureDrift", {"feature": "x"}, 95_000, 95_060, 95_100),  # long after: false alarm
    ])
    false = result.false_alarms(grace=660)
    assert false["by_alert"] == {"ModelFeatureDrift(x)": 2}
    assert false["healthy_days"] == round((86_400 + 86_400 - 3_600 - 660) / 86_400, 4)
    assert result.detections() == [{"phase": "drop", "alert": "ModelLowPositiveRate", "delay_seconds": 120.0}]
    assert "ModelLowPositiveRate" in result.table(grace=660)


def test_estimation_error_reads_back_to_back_windows_with_enough_labels():
    phases = [PhaseSpan("normal", 0, 600, True), PhaseSpan("drift", 600, 1200, False)]
    times = [5.0 * k for k in range(1, 241)]  # an evaluation every 5 s
    quality = {
        "estimated": [(t, 0.90 if t <= 600 else 0.70) for t in times],
        "realized": [(t, (0.88 if t != 600 else 0.80) if t <= 600 else 0.75) for t in times],
        "labels": [(t, 250.0 if t <= 600 else 150.0) for t in times],
    }
    result = Result("s", "production", 1200, phases, [], rows=0, labels=0, quality=quality, quality_window=300)
    error = result.estimation_error(min_labels=200)
    # Windows ending at 300 and 600 s; the drift's hold 150 labels, under 200: not scored.
    assert error == {"normal": {"windows": 2, "median_abs": pytest.approx(0.06), "worst_abs": pytest.approx(0.10),
                                "mean_signed": pytest.approx(0.06)}}
    assert result.estimation_error(min_labels=100)["drift"]["mean_signed"] == pytest.approx(-0.05)

from modelmon.simulate.simulator import PhaseResult
from modelmon.simulate.timeline import Event, detections, render_timeline

T0 = 1_800_000_000.0  # wall-clock epoch of the scenario's start


def phases():
    return [PhaseResult("normal", 1, 1, started_at=T0), PhaseResult("customer drop", 1, 1, started_at=T0 + 45),
            PhaseResult("workshop faulty", 1, 1, started_at=T0 + 105)]


def test_delays_are_measured_from_the_phase_that_caused_them():
    events = [
        Event(T0 + 63.0, "firing", "ModelLowPositiveRate", "model=stores"),
        Event(T0 + 64.0, "notified", "ModelLowPositiveRate", "#c: [FIRING:1] ModelLowPositiveRate - model stores"),
        Event(T0 + 82.0, "firing", "ModelFeatureDrift", "feature=customers_count"),
        Event(T0 + 83.0, "notified", "ModelFeatureDrift", "#c: [FIRING:1] ModelFeatureDrift"),
        # The grouped notification can be logged just before the poll that sees the alert firing.
        Event(T0 + 127.9, "notified", "ModelFeatureDrift", "#c: [FIRING:2] ModelFeatureDrift"),
        Event(T0 + 128.3, "firing", "ModelFeatureDrift", "feature=items_count"),
    ]
    found, false_alarms = detections(phases(), events)
    by = {(d.alert, d.detail): d for d in found}
    assert false_alarms == []
    low = by[("ModelLowPositiveRate", "model=stores")]
    assert (low.phase, low.to_firing, low.to_notified) == ("customer drop", 18.0, 19.0)
    items = by[("ModelFeatureDrift", "feature=items_count")]
    assert items.phase == "workshop faulty"
    assert round(items.to_firing, 1) == 23.3 and round(items.to_notified, 1) == 22.9


def test_firing_in_the_normal_phase_is_a_false_alarm():
    events = [Event(T0 + 10.0, "firing", "ModelPredictionDrift", "model=stores")]
    found, false_alarms = detections(phases(), events)
    assert found == [] and false_alarms == events


def test_timeline_orders_phases_and_events():
    text = render_timeline(phases(), [Event(T0 + 63.0, "firing", "ModelLowPositiveRate", "model=stores", "0.114")])
    lines = text.splitlines()
    assert "phase 'customer drop' starts" in lines[2]
    assert "+18.0s" in lines[3] and "ModelLowPositiveRate firing" in lines[3] and "(value 0.114)" in lines[3]

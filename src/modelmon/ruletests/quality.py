"""Quality cases: accuracy and error from labels, estimated quality from calibrated
probabilities, and concept drift between the two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from modelmon.contract import alerts as A
from modelmon.model.reference import ReferenceProfile
from modelmon.rules.alerts import Alert
from modelmon.rules.series import Names
from modelmon.ruletests.case import INSTANCES, REPLICAS, Case
from modelmon.ruletests.inputs import (
    Confusion,
    Errors,
    confusion_quality,
    confusion_with_accuracy,
    errors_of,
    healthy_confusion,
    healthy_errors,
    label_inputs,
    mix_of,
    standard_inputs,
    summed_confusion,
)
from modelmon.ruletests.oracle import Condition, check_alerts, concept_needed, estimated_needed
from modelmon.ruletests.solve import just_inside, just_past, per_step_count, steps_of, window_increase
from modelmon.settings import Settings, seconds
from modelmon.stats.evidence import wilson_upper, z_of


def expect_quiet(case: Case, at: float, names: Sequence[str], by_name: Mapping[str, Alert], url: str) -> None:
    """Each of the named alerts that the model has stays quiet at `at`."""
    for name in names:
        if name in by_name:
            case.alert(by_name[name], at, [], url)


def classification_quality_cases(profile: ReferenceProfile, s: Settings, q_steps: int, q_interval: float,
                                  q_end: float, by_name: Mapping[str, Alert], url: str) -> list[Case]:
    """Accuracy, precision, recall and F1 from the confusion counters, and ModelQualityDrop."""
    n = Names.of(s)
    hold = seconds(s.alert_for)
    labels = {"model": profile.model}
    positive = profile.positive
    mix = mix_of(profile, 40.0)
    total = sum(mix.values())
    # Labels as good as the model was in training: quality at its computed values, quiet.
    quality_cases: list[Case] = []
    healthy = Case("labels mostly agree with predictions: quality at its computed values, nothing fires", s,
                    q_steps, q_interval)
    window = seconds(s.quality_window)
    # Probabilities as right as the labels: the estimate agrees with them.
    estimate = [confusion_with_accuracy(profile, (1 + s.accuracy_floor) / 2, scale=total)] * len(INSTANCES) \
        if profile.probabilities else None
    standard_inputs(healthy, profile, mix, expected=estimate)
    confusion = healthy_confusion(profile, s)
    for metric, expected in confusion_quality(confusion, positive.label if positive else None).items():
        healthy.expect(getattr(n, metric), q_end, labels, expected)
    if estimate is not None:
        expect_estimated(healthy, n, q_end, profile, {k: v * window / q_interval for k, v in summed_confusion(estimate).items()},
                          window)
    healthy.expect(n.label_coverage, q_end, labels, sum(confusion.values()) / total)
    expect_quiet(healthy, q_end, [name for name in by_name if name != A.SERVER_DOWN], by_name, url)
    quality_cases.append(healthy)

    # Concept drift: the same inputs and predictions, but the model is now often wrong. The
    # replicas see different labels; the statistics are those of their summed matrix.
    # Half the floor in all: one replica a little better, the other a little worse.
    wrong_a = confusion_with_accuracy(profile, 0.4 * s.accuracy_floor, scale=10.0)
    wrong_b = confusion_with_accuracy(profile, 0.6 * s.accuracy_floor, scale=10.0, skew=True)
    summed = summed_confusion([wrong_a, wrong_b])
    expected_quality = confusion_quality(summed, positive.label if positive else None)
    wrong = Case("labels disagree with predictions: accuracy, precision, recall, F1 of the summed replicas", s, q_steps, q_interval)
    standard_inputs(wrong, profile, mix, confusion=[wrong_a, wrong_b], expected=estimate)
    for metric, expected in expected_quality.items():
        wrong.expect(getattr(n, metric), q_end, labels, expected)
    labels_in_window = sum(summed.values()) * seconds(s.quality_window) / q_interval
    if estimate is not None:  # the probabilities did not see it coming: concept drift
        estimated = (1 + s.accuracy_floor) / 2
        check_alerts(wrong, [Condition(A.CONCEPT_DRIFT, labels, estimated - expected_quality["accuracy"], True,
                                         sum(summed.values()), window, 1.0,
                                         concept_needed(expected_quality["accuracy"], estimated, s))],
                      by_name, q_end, url)
    wrong.expect(n.labels_increase, q_end, labels, labels_in_window)
    for cell, per_step in summed.items():
        wrong.expect(n.confusion_rate, q_end, {**labels, "actual": cell[0], "predicted": cell[1]}, per_step / q_interval)
    wrong.alert(by_name[A.QUALITY_DROP], hold / 2, [], url)
    wrong.alert(by_name[A.QUALITY_DROP], q_end, [(labels, expected_quality["accuracy"])], url)
    expect_quiet(wrong, q_end, [A.FEATURE_DRIFT, A.PREDICTION_DRIFT, A.LOW_POSITIVE_RATE], by_name, url)
    quality_cases.append(wrong)

    # The same disagreement on too few labels: the accuracy is noise, nothing fires.
    few = Case("low accuracy on fewer labels than min_labels does not fire", s, q_steps, q_interval)
    scale = 0.5 * s.min_labels / labels_in_window
    standard_inputs(few, profile, mix, confusion=[{k: v * scale for k, v in wrong_a.items()},
                                                   {k: v * scale for k, v in wrong_b.items()}])
    few.expect(n.accuracy, q_end, labels, expected_quality["accuracy"])
    few.alert(by_name[A.QUALITY_DROP], q_end, [], url)
    quality_cases.append(few)

    return quality_cases


def expect_estimated(case: Case, n: Names, at: float, profile: ReferenceProfile, summed: Confusion,
                      window: float) -> dict[str, float]:
    """The estimated quality of `summed` (the replicas' expected confusion counted over the
    quality window, `window` seconds): each cell's rate, the count, the four ratios, the
    accuracy's upper bound. Returns the ratios."""
    labels = {"model": profile.model}
    quality = confusion_quality(summed, profile.positive.label if profile.positive else None)
    for metric, value in quality.items():
        case.expect(getattr(n, f"estimated_{metric}"), at, labels, value)
    for (actual, predicted), count in summed.items():
        case.expect(n.expected_confusion_rate, at, {**labels, "actual": actual, "predicted": predicted}, count / window)
    count = sum(summed.values())
    case.expect(n.expected_increase, at, labels, count)
    case.expect(n.estimated_accuracy_upper, at, labels, wilson_upper(quality["accuracy"], count, z_of(case.settings.confidence)))
    return quality


def estimated_quality_cases(profile: ReferenceProfile, s: Settings, steps: int, interval: float, end: float,
                             by_name: Mapping[str, Alert], url: str) -> list[Case]:
    """Quality estimated from calibrated probabilities (modelmon.stats.calibration): the ratios of
    the summed replicas' expected confusion, ModelEstimatedQualityDrop on and around the
    count its Wilson bound needs, with no label; ModelConceptDrift when labels fall under the
    estimate by more than the margin, on and around the labels its bound needs. Each alert is
    checked halfway through its `for` too."""
    n = Names.of(s)
    window = seconds(s.quality_window)
    hold = seconds(s.alert_for)
    labels = {"model": profile.model}
    mix = mix_of(profile, 40.0)
    rows = sum(mix.values())
    z = z_of(s.confidence)
    no_labels: list[Confusion] = [{}, {}]
    out: list[Case] = []

    def check(case: Case, condition: Condition) -> None:
        start = condition.active_from(interval)
        if start is not None:
            check_alerts(case, [condition], by_name, start + math.ceil(hold / 2 / interval) * interval, url)
        check_alerts(case, [condition], by_name, end, url)

    # Under the floor, on plenty of rows (the replicas differ; their sum decides).
    a = confusion_with_accuracy(profile, 0.5 * s.accuracy_floor, scale=rows)
    b = confusion_with_accuracy(profile, 0.7 * s.accuracy_floor, scale=rows, skew=True)
    case = Case("calibrated probabilities put accuracy under the floor: the estimated quality of the summed "
                 "replicas, ModelEstimatedQualityDrop with no label", s, steps, interval)
    label_inputs(case, profile, mix, no_labels, [a, b])
    per_step = {cell: value for cell, value in summed_confusion([a, b]).items()}
    quality = expect_estimated(case, n, end, profile, {k: v * window / interval for k, v in per_step.items()}, window)
    check(case, Condition(A.ESTIMATED_QUALITY_DROP, labels, quality["accuracy"], True, sum(per_step.values()),
                           window, 1.0, estimated_needed(quality["accuracy"], s)))
    expect_quiet(case, end, [A.CONCEPT_DRIFT, A.QUALITY_DROP], by_name, url)  # no labels, no verdict from them
    out.append(case)

    # Just past and short of the rows that make it evidence, and just above the floor.
    for title, accuracy, volume in (("under the floor on 1.25x the rows its bound needs", 0.9, 1.25),
                                    ("under the floor on 0.8x the rows its bound needs", 0.9, 0.8),
                                    ("just above the floor", None, 10.0)):
        value = 0.9 * s.accuracy_floor if accuracy else just_inside(s.accuracy_floor, False)
        need = estimated_needed(value, s)
        count = volume * (need if need is not None else s.min_labels)
        step_rows = per_step_count(count, window, interval)
        matrix = confusion_with_accuracy(profile, value, scale=step_rows, skew=True)
        case = Case(f"estimated accuracy {title}", s, steps, interval)
        label_inputs(case, profile, mix, no_labels, [matrix, matrix])
        case.expect(n.estimated_accuracy, end, labels, value)
        case.expect(n.estimated_accuracy_upper, end, labels, wilson_upper(value, count, z))
        check(case, Condition(A.ESTIMATED_QUALITY_DROP, labels, value, True, REPLICAS * step_rows, window, 1.0, need))
        out.append(case)

    # Labels under a healthy estimate: by twice the margin (on and around the labels that make
    # it evidence), by half of it.
    estimate = (1 + s.accuracy_floor) / 2
    expected = confusion_with_accuracy(profile, estimate, scale=rows)
    for title, accuracy, volume in (("labels under the estimate by twice the margin, 1.25x the labels its bound needs",
                                     max(0.0, estimate - 2 * s.concept_drift_margin), 1.25),
                                    ("labels under the estimate by twice the margin, 0.8x the labels its bound needs",
                                     max(0.0, estimate - 2 * s.concept_drift_margin), 0.8),
                                    ("labels under the estimate by half the margin",
                                     estimate - 0.5 * s.concept_drift_margin, 10.0)):
        need = concept_needed(accuracy, estimate, s)
        count = volume * (need if need is not None else s.min_labels)
        step_labels = per_step_count(count, window, interval)
        confusion = confusion_with_accuracy(profile, accuracy, scale=step_labels, skew=True)
        case = Case(title, s, steps, interval)
        label_inputs(case, profile, mix, [confusion, confusion], [expected, expected])
        case.expect(n.accuracy, end, labels, accuracy)
        case.expect(n.accuracy_upper, end, labels, wilson_upper(accuracy, count, z))
        case.expect(n.estimated_accuracy, end, labels, estimate)
        check(case, Condition(A.CONCEPT_DRIFT, labels, estimate - accuracy, True, REPLICAS * step_labels, window, 1.0,
                               need))
        expect_quiet(case, end, [A.ESTIMATED_QUALITY_DROP], by_name, url)
        out.append(case)
    return out


def regression_quality_cases(profile: ReferenceProfile, s: Settings, q_steps: int, q_interval: float,
                              q_end: float, by_name: Mapping[str, Alert], url: str) -> list[Case]:
    """MAE, RMSE and bias from a regressor's error sums, and its MAE-based ModelQualityDrop."""
    n = Names.of(s)
    hold = seconds(s.alert_for)
    labels = {"model": profile.model}
    mix = mix_of(profile, 40.0)
    total = sum(mix.values())
    out = []
    healthy = Case("labels as close as in training: MAE, RMSE, bias at their computed values, nothing fires", s,
                    q_steps, q_interval)
    errors = [healthy_errors(profile)] * len(INSTANCES)
    standard_inputs(healthy, profile, mix, errors=errors)
    for metric, expected in errors_of(errors).items():
        healthy.expect(getattr(n, metric), q_end, labels, expected)
    healthy.expect(n.label_coverage, q_end, labels, errors[0].count / total)
    expect_quiet(healthy, q_end, [name for name in by_name if name != A.SERVER_DOWN], by_name, url)
    out.append(healthy)
    if A.QUALITY_DROP not in by_name or profile.errors is None:
        return out  # no training MAE (no target when profiled): no alert to test
    alert = by_name[A.QUALITY_DROP]
    ceiling = s.mae_ratio * profile.errors.mae
    # The truth moved: one replica's labels a little past the ceiling, the other's far past;
    # the statistics are those of both together, one over- and one under-estimating.
    wrong = [Errors(10.0, 1.2 * ceiling, 1.4 * ceiling, 0.5 * ceiling), Errors(6.0, 2.5 * ceiling, 3.0 * ceiling,
                                                                                -ceiling)]
    far = errors_of(wrong)
    case = Case("labels far from the predictions: MAE, RMSE, bias of the summed replicas", s, q_steps, q_interval)
    standard_inputs(case, profile, mix, errors=wrong)
    for metric, value in far.items():
        case.expect(getattr(n, metric), q_end, labels, value)
    labels_in_window = sum(e.count for e in wrong) * seconds(s.quality_window) / q_interval
    case.expect(n.labels_increase, q_end, labels, labels_in_window)
    case.alert(alert, hold / 2, [], url)
    case.alert(alert, q_end, [(labels, far["mae"])], url)
    expect_quiet(case, q_end, [A.FEATURE_DRIFT, A.PREDICTION_DRIFT], by_name, url)
    out.append(case)
    # Boundary: the MAE just past and inside its ceiling, over and under min_labels, mid-`for`.
    q = seconds(s.quality_window)
    end = (q_steps - 2) * q_interval
    for title, past, volume in (("MAE just over the ceiling, 1.5x min_labels", True, 1.5),
                                ("MAE just under the ceiling", False, 10.0),
                                ("MAE over the ceiling on 0.75x min_labels", True, 0.75),
                                ("MAE over the ceiling, pending halfway through for", True, 10.0)):
        mae = just_past(ceiling, True) if past else just_inside(ceiling, True, 1e18)
        count = per_step_count(volume * s.min_labels, q, q_interval)
        boundary = Case(f"labels {title}", s, q_steps, q_interval)
        standard_inputs(boundary, profile, mix, errors=[Errors(count, mae, 1.2 * mae, 0.0)] * REPLICAS)
        condition = Condition(alert.name, labels, mae, mae > ceiling, REPLICAS * count, q, s.min_labels)
        start = condition.active_from(q_interval)
        if title.endswith("for") and start is not None:
            check_alerts(boundary, [condition], by_name, start + math.ceil(hold / 2 / q_interval) * q_interval, url)
        check_alerts(boundary, [condition], by_name, end, url)
        out.append(boundary)
    out += _regression_change_case(profile, s, q_steps, q_interval, mix, ceiling)
    return out


def _regression_change_case(profile: ReferenceProfile, s: Settings, q_steps: int, q_interval: float,
                            mix: Mapping[str, float], ceiling: float) -> list[Case]:
    """Labels change in number and error half a quality window before the check: MAE, RMSE,
    bias and coverage read the window's mix of both."""
    n = Names.of(s)
    labels = {"model": profile.model}
    q = seconds(s.quality_window)
    steps = steps_of(q, q_interval)
    if steps is None or steps < 2 or profile.errors is None:
        return []
    last = q_steps - 2
    change = last - steps // 2
    good, bad = Errors(4.0, profile.errors.mae, 1.3 * profile.errors.mae, 0.2 * profile.errors.mae), \
        Errors(12.0, 2 * ceiling, 2.5 * ceiling, -0.5 * ceiling)
    more = mix_of(profile, 80.0)
    name = "labels change in number and error half a quality window before the check"
    case, later = Case(name, s, q_steps, q_interval), Case(name, s, q_steps, q_interval)
    standard_inputs(case, profile, mix, errors=[good, good])
    standard_inputs(later, profile, more, errors=[bad, bad])
    case.changing_to(later, change)
    at = last * q_interval

    def inc(a: float, b: float) -> float:
        return REPLICAS * window_increase(a, b, change, last, steps)

    count = inc(good.count, bad.count)
    case.expect(n.mae, at, labels, inc(good.count * good.mae, bad.count * bad.mae) / count)
    case.expect(n.rmse, at, labels, math.sqrt(inc(good.count * good.rmse**2, bad.count * bad.rmse**2) / count))
    case.expect(n.bias, at, labels, (inc(good.over, bad.over) - inc(good.under, bad.under)) / count)
    case.expect(n.labels_increase, at, labels, count)
    case.expect(n.label_coverage, at, labels, count / inc(sum(mix.values()), sum(more.values())))
    return [case]

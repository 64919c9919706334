"""Building a model's reference profile from its training data (`modelmon profile`): each input's
reference CDF, bins, categories and missing share, the classes or predicted values, and, on rows
the model was not fitted on, the calibration of its probabilities and its reference quality.
What the profile holds, and how it is read back: `modelmon.model.reference`.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pandas as pd

from modelmon.contract.buckets import PROBABILITY_BUCKETS, QUANTILE_BUCKETS
from modelmon.contract.names import OTHER
from modelmon.model.files import MODEL_CONFIG_FILE
from modelmon.model.loading import LoadedModel, Prediction
from modelmon.model.reference import (
    MAX_CATEGORIES,
    MAX_CLASSES,
    MAX_RARE,
    PREDICTION,
    CategoryProfile,
    ClassProfile,
    ErrorProfile,
    FeatureProfile,
    ProfileError,
    ReferenceProfile,
    category_label,
)
from modelmon.model.signature import CLASSIFICATION, REGRESSION, Feature
from modelmon.stats import calibration as calibrating
from modelmon.stats.calibration import Calibration

_CDF_POINTS = 512  # enough knots that F_ref is exact to well under a bucket's width


# Without --calibration-data, this share of the training rows (those a seeded shuffle puts
# last) calibrates the probabilities. Honest only if the model was not fitted on them.
HELD_OUT_SHARE = 0.3


_HELD_OUT_SEED = 0


MIN_CALIBRATION_ROWS = 100


class ProfileNote(UserWarning):
    """A profile was built, but not all of it: what is missing and how to get it (the command
    line prints these; a library caller sees them as warnings)."""


def held_out(rows: int) -> np.ndarray:
    """Which training rows calibrate when no calibration data is given (HELD_OUT_SHARE of
    them, chosen by a seeded shuffle): fit a model on the others to keep the calibration honest."""
    order = np.random.default_rng(_HELD_OUT_SEED).permutation(rows)
    mask = np.zeros(rows, dtype=bool)
    mask[order[rows - round(HELD_OUT_SHARE * rows):]] = True
    return mask


def profile_category(name: str, kind: str, column: pd.Series, nullable: bool = False) -> CategoryProfile:
    """Shares of the most frequent training categories; the rest is `other`'s reference share."""
    present = column.dropna()
    if present.empty:
        raise ProfileError(f"Column {name!r} has no values; a profile needs training data.")
    counts = present.map(category_label).value_counts()
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = ordered[:MAX_CATEGORIES]
    if any(label == OTHER for label, _ in kept):
        raise ProfileError(f"Column {name!r} has a category named {OTHER!r}, which modelmon keeps for unseen "
                           "and rare categories; rename it in the data and the model.")
    total = float(len(present))
    missing_share = float(1 - len(present) / len(column))
    return CategoryProfile(
        name=name,
        kind=kind,
        count=int(total),
        missing_share=missing_share,
        values=tuple(str(label) for label, _ in kept),
        shares=tuple(float(count) / total for _, count in kept),
        other_share=float(sum(count for _, count in ordered[MAX_CATEGORIES:])) / total,
        nullable=nullable or missing_share > 0,
        rare=tuple(str(label) for label, _ in ordered[MAX_CATEGORIES:MAX_CATEGORIES + MAX_RARE]),
    )


def _cdf_at(sorted_values: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_values, points, side="right") / len(sorted_values)


def _mid_ranks(sorted_values: np.ndarray, knots: np.ndarray) -> np.ndarray:
    below = np.searchsorted(sorted_values, knots, side="left")
    upto = np.searchsorted(sorted_values, knots, side="right")
    return (below + upto) / (2.0 * len(sorted_values))


def _default_edges(values: np.ndarray) -> tuple[float, ...]:
    """Training deciles, deduplicated: a histogram that is informative for any scale."""
    deciles = np.quantile(values, np.linspace(0.1, 0.9, 9))
    return tuple(float(e) for e in np.unique(np.round(deciles, 6)))


def _bucket_shares(ranks: np.ndarray, buckets: tuple[float, ...]) -> tuple[float, ...]:
    ranks = np.sort(ranks)
    return tuple(float(x) for x in _cdf_at(ranks, np.asarray(buckets)))


def profile_feature(
    name: str,
    kind: str,
    column: pd.Series,
    edges: tuple[float, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    nullable: bool = False,
) -> FeatureProfile:
    present = column.dropna().to_numpy(dtype="float64")
    if present.size == 0:
        raise ProfileError(f"Column {name!r} has no values; a profile needs training data.")
    ordered = np.sort(present)
    knots = np.unique(ordered)
    if knots.size > _CDF_POINTS:
        knots = np.unique(np.quantile(ordered, np.linspace(0, 1, _CDF_POINTS)))
    ranks = _mid_ranks(ordered, knots)
    edges = tuple(float(e) for e in edges) if edges else _default_edges(ordered)
    profile = FeatureProfile(
        name=name,
        kind=kind,
        count=int(present.size),
        missing_share=float(1 - present.size / len(column)),
        mean=float(ordered.mean()),
        std=float(ordered.std(ddof=1)) if present.size > 1 else 0.0,
        min=float(ordered[0]),
        max=float(ordered[-1]),
        edges=edges,
        edges_cdf=tuple(float(x) for x in _cdf_at(ordered, np.asarray(edges))),
        cdf_values=tuple(float(x) for x in knots),
        cdf_ranks=tuple(float(x) for x in ranks),
        quantile_reference=(),
        minimum=minimum,
        maximum=maximum,
        nullable=nullable or present.size < len(column),
    )
    reference = _bucket_shares(profile.rank(present), QUANTILE_BUCKETS)
    return FeatureProfile(**{**asdict(profile), "quantile_reference": reference})


def build_profile(model: LoadedModel, data: pd.DataFrame, target: str | None = None,
                  calibration_data: pd.DataFrame | None = None, calibration_source: str = "") -> ReferenceProfile:
    """Profile the inputs and the model's own outputs on its training data; with a target,
    calibrate a classifier's probabilities on `calibration_data` (rows the model was not fitted
    on), else on the held-out share of the training data (`held_out`)."""
    target = _checked_target(model, data, target)
    data = data.assign(**{f.name: _numbers(data, f.name) for f in model.features if f.numeric})
    features = tuple(
        profile_feature(f.name, f.kind, data[f.name], f.edges, f.minimum, f.maximum, f.nullable)
        for f in model.features
        if f.numeric
    )
    categories = tuple(
        profile_category(f.name, f.kind, data[f.name], f.nullable) for f in model.features if not f.numeric
    )
    nullable = {f.name for f in features if f.nullable} | {c.name for c in categories if c.nullable}
    served = tuple(replace(f, nullable=f.nullable or f.name in nullable) for f in model.features)
    # Rows the server would accept: every input that must be present is.
    complete = data.dropna(subset=[f.name for f in served if not f.nullable])
    prediction = _predict_training(model, served, complete, data)
    values = [v.item() if hasattr(v, "item") else v for v in prediction.values]
    actual = complete[target].reset_index(drop=True) if target is not None else None
    task = _task(model, values, actual)
    if task == REGRESSION:
        return ReferenceProfile(model=model.name, rows=len(data), features=features, categories=categories,
                                task=task, classes=(), **_regression_outputs(values, actual))
    classes, positive, probability_cdf = _classes_of(model, prediction, values, actual)
    calibration = None
    if target is not None and prediction.probabilities is not None and prediction.classes is not None:
        if calibration_data is None:
            rows = complete[held_out(len(complete))]
            calibration_source = f"held-out {HELD_OUT_SHARE:.0%} of the training data"
        else:
            rows = _calibration_rows(calibration_data, served, target)
            calibration_source = calibration_source or "calibration data"
        calibration = _calibrate(model, served, rows, target, classes, positive, calibration_source)
    return ReferenceProfile(
        model=model.name,
        rows=len(data),
        features=features,
        categories=categories,
        task=task,
        classes=classes,
        positive_class=positive,
        probability_cdf=probability_cdf,
        calibration=calibration,
        probabilities=prediction.probabilities is not None,
    )


def _checked_target(model: LoadedModel, data: pd.DataFrame, target: str | None) -> str | None:
    """The target column (given, or the model's config's), after checking the data has every
    input and the target, and that the target is not an input."""
    missing = [f.name for f in model.features if f.name not in data.columns]
    if missing:
        raise ProfileError(
            f"The data lacks the model's input column(s) {', '.join(missing)}; pass the training "
            "CSV the model was fitted on."
        )
    target = target or model.config.target
    if target is not None and target not in data.columns:
        raise ProfileError(f"The data has no target column {target!r}; pass --target with one it has.")
    if target is not None and target in model.feature_names:
        raise ProfileError(f"The target {target!r} is one of the model's inputs; pass --target with the column the "
                           "model predicts (its label or true value).")
    return target


def _predict_training(model: LoadedModel, served: tuple[Feature, ...], complete: pd.DataFrame,
                      data: pd.DataFrame) -> Prediction:
    """The model's answers on the complete training rows; a failure says which row to mend."""
    frame = model.frame({f.name: _column(complete[f.name]) for f in served}, served)
    try:
        prediction = model.predict(frame)
    except Exception as exc:
        gaps = [f.name for f in served if f.nullable and complete[f.name].isna().any()]
        if gaps:
            row = _first(data[gaps[0]].isna())
            raise ProfileError(
                f"The model cannot predict on rows with a missing value ({_first_sentence(exc)}), and column "
                f"{gaps[0]!r} has one at row {row} of the data (an empty or n/a cell): fill or drop such rows, or "
                "profile a model that takes missing values."
            ) from None
        raise ProfileError(
            f"The model could not predict on its training data ({type(exc).__name__}: {_first_sentence(exc)}); "
            "check that the data is what the model was fitted on."
        ) from None
    return prediction


def _regression_outputs(values: list[Any], actual: pd.Series | None) -> dict[str, Any]:
    """A regressor's predicted-value profile and, with the truth, its training error."""
    predicted = np.asarray(values, dtype="float64")
    errors = None
    if actual is not None:
        error = predicted - actual.to_numpy(dtype="float64")
        error = error[np.isfinite(error)]
        errors = ErrorProfile(rows=int(error.size), mae=float(np.abs(error).mean()),
                              rmse=float(np.sqrt((error**2).mean())), bias=float(error.mean()))
    return {"prediction": profile_feature(PREDICTION, "float", pd.Series(predicted)), "errors": errors}


def _classes_of(model: LoadedModel, prediction: Prediction, values: list[Any], actual: pd.Series | None
                ) -> tuple[tuple[ClassProfile, ...], Any, tuple[float, ...] | None]:
    """A classifier's classes (predicted and actual shares), its positive class, and the
    reference CDF of the positive class's probability."""
    class_values = list(prediction.classes) if prediction.classes is not None else sorted(set(values), key=str)
    if actual is not None:
        class_values = sorted(set(class_values) | set(actual.dropna().tolist()), key=_class_order)
    predicted_series = pd.Series(values)
    classes = tuple(
        ClassProfile(
            value=v,
            label=model.config.classes.get(v, str(v)),
            prior=float((predicted_series == v).mean()),
            actual_share=float((actual == v).mean()) if actual is not None else None,
        )
        for v in class_values
    )
    positive = model.config.positive_class
    if positive is None and len(classes) == 2:
        positive = classes[1].value
    probability_cdf = None
    if prediction.probabilities is not None and positive is not None and prediction.classes is not None:
        column = list(prediction.classes).index(positive)
        probability_cdf = _bucket_shares(prediction.probabilities[:, column], PROBABILITY_BUCKETS)
    return classes, positive, probability_cdf


def _calibration_rows(data: pd.DataFrame, served: tuple[Feature, ...], target: str) -> pd.DataFrame:
    missing = [name for name in [*(f.name for f in served), target] if name not in data.columns]
    if missing:
        raise ProfileError(f"The calibration data lacks the column(s) {', '.join(missing)}; it needs the model's "
                           "inputs and the target, like the training data.")
    return data.dropna(subset=[f.name for f in served if not f.nullable])


def _calibrate(model: LoadedModel, served: tuple[Feature, ...], rows: pd.DataFrame, target: str,
               classes: tuple[ClassProfile, ...], positive: Any, source: str) -> Calibration | None:
    """The calibration map fitted on `rows` (None with too few labelled rows to fit one)."""
    rows = rows[rows[target].notna()]
    if len(rows) < MIN_CALIBRATION_ROWS:
        warnings.warn(ProfileNote(
            f"Not calibrated: the {source} has {len(rows)} labelled rows, under the {MIN_CALIBRATION_ROWS} a "
            "calibration needs, so estimated quality will use the model's raw probabilities; pass "
            f"--calibration-data with at least {MIN_CALIBRATION_ROWS} labelled rows the model was not fitted on."),
            stacklevel=2)
        return None
    prediction = model.predict(model.frame({f.name: _column(rows[f.name]) for f in served}, served))
    assert prediction.probabilities is not None and prediction.classes is not None
    order = [_plain(c) for c in prediction.classes]
    known = rows[target].map(_plain).isin(order).to_numpy()
    actual = np.array([order.index(v) for v in rows[target].map(_plain)[known]], dtype="int64")
    labels = {c.value: c.label for c in classes}
    return calibrating.fit(prediction.probabilities[known], actual, tuple(labels.get(v, str(v)) for v in order),
                           f"{source} ({int(known.sum())} rows)", order.index(positive) if positive in order else None)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _first(mask: pd.Series) -> int:
    """The 1-based row of the data (as read, header excluded) where `mask` is first true."""
    return int(np.flatnonzero(mask.to_numpy())[0]) + 1


def _first_sentence(exc: Exception) -> str:
    """An error's first sentence, whole (a library's message cut mid-sentence says nothing)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    end = text.find(". ")
    return text[:end + 1] if end > 0 else text


def _numbers(data: pd.DataFrame, name: str) -> pd.Series:
    """A numeric input's column as numbers; a cell of text is refused, named with its row."""
    column = data[name]
    if column.dtype.kind in "biuf":
        return column
    text = column.notna() & pd.to_numeric(column, errors="coerce").isna()
    count = int(text.sum())
    if count:
        row = _first(text)
        raise ProfileError(
            f"Column {name!r} is a number for the model, but row {row} of the data holds "
            f"{column.iloc[row - 1]!r}{f' ({count} such rows in all)' if count > 1 else ''}: "
            f"correct or remove {'that row' if count == 1 else 'those rows'}, or leave such cells empty if "
            "the value is missing.")
    return pd.to_numeric(column)


def _class_order(value: Any) -> tuple[int, Any]:
    """Numbers before strings, each in their order: class values may mix types in a target."""
    return (0, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, str(value))


def _column(column: pd.Series) -> list[Any]:
    """A training column as a request would bring it: missing values as None."""
    return [None if pd.isna(v) else v for v in column.tolist()]


def _task(model: LoadedModel, values: list[Any], actual: pd.Series | None) -> str:
    """Classification or regression: as declared, else from the estimator, else from the data.
    A classifier with more classes than labels can stay bounded is refused, not served."""
    task = model.task_hint
    if task is None:
        # Fractional predictions, or a float target with many values, are quantities.
        fractional = any(isinstance(v, float) and not float(v).is_integer() for v in values)
        quantity = actual is not None and actual.dtype.kind == "f" and actual.nunique() > MAX_CLASSES
        task = REGRESSION if fractional or quantity else CLASSIFICATION
    if task == CLASSIFICATION:
        predicted = len(set(values))
        if predicted > MAX_CLASSES:
            raise ProfileError(
                f"The model {model.name!r} predicts {predicted} distinct classes, over the {MAX_CLASSES} that "
                f"modelmon can count per class; if it predicts a quantity, write `task: regression` in "
                f"{model.path / MODEL_CONFIG_FILE}."
            )
        if actual is not None and actual.nunique() > MAX_CLASSES:
            raise ProfileError(
                f"The target column {actual.name!r} has {actual.nunique()} distinct values, while the model predicts "
                f"{predicted} classes: pass --target with the column the model was trained to predict (or, if it "
                f"predicts a quantity, write `task: regression` in {model.path / MODEL_CONFIG_FILE})."
            )
    return task

"""The reference profile: what "normal" looked like on the training data, for one model.

It is the single source of truth for the task (classification or regression), histogram
edges, the reference CDF used by drift (`F_ref`), category shares, missing shares, class
labels and priors, and the model's error on its training data. The server exports parts of
it as gauges so Prometheus can compare live traffic against it without being told anything
else.

Every label set it implies is bounded here, at profile time: a classifier may have at most
`MAX_CLASSES` classes, a categorical input keeps its `MAX_CATEGORIES` most frequent training
categories (the rest, and anything unseen, are `other`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from modelmon.contract.buckets import PROBABILITY_BUCKETS
from modelmon.errors import ModelmonError
from modelmon.model.files import PROFILE_FILE
from modelmon.model.signature import CLASSIFICATION, REGRESSION, Feature
from modelmon.stats.calibration import Calibration, Quality

SCHEMA_VERSION = 2


_READABLE_VERSIONS = (1, 2)  # version 1: classifiers on numeric inputs, read as such


MAX_CLASSES = 50


MAX_CATEGORIES = 30


MAX_RARE = 10_000  # rare training categories remembered; past that, rarer ones would read as unseen


PREDICTION = "prediction"  # the name a regressor's predicted value is profiled under


class ProfileError(ModelmonError, ValueError):
    """A profile that cannot be built or read; the message says what to do."""


@dataclass(frozen=True)
class FeatureProfile:
    name: str
    kind: str
    count: int
    missing_share: float
    mean: float
    std: float
    min: float
    max: float
    edges: tuple[float, ...]
    edges_cdf: tuple[float, ...]  # share of training values <= each edge
    cdf_values: tuple[float, ...]  # knots of F_ref (sorted training values or their quantiles)
    cdf_ranks: tuple[float, ...]  # mid-rank F_ref at each knot, so ties do not bias the ranks
    quantile_reference: tuple[float, ...]  # share of training rows with F_ref <= each bucket
    minimum: float | None = None  # declared validity bounds (not the training range)
    maximum: float | None = None
    nullable: bool = False  # may be missing when served (declared, or missing in training)

    def rank(self, values: np.ndarray) -> np.ndarray:
        """F_ref(x): the training share below x (mid-rank at ties), 0 below min, 1 above max."""
        ranks: np.ndarray = np.interp(values, self.cdf_values, self.cdf_ranks, left=0.0, right=1.0)
        return ranks


@dataclass(frozen=True)
class CategoryProfile:
    """A categorical input: its training categories (most frequent first) and their shares."""

    name: str
    kind: str
    count: int  # present training values
    missing_share: float
    values: tuple[str, ...]  # category labels, at most MAX_CATEGORIES
    shares: tuple[float, ...]  # share of the present training values in each category
    other_share: float  # share in training categories beyond the bound (served as `other`)
    nullable: bool = False
    rare: tuple[str, ...] = ()  # those categories (up to MAX_RARE), so they are not counted as unseen


@dataclass(frozen=True)
class ErrorProfile:
    """A regressor's error on the training data (prediction minus target)."""

    rows: int
    mae: float
    rmse: float
    bias: float


@dataclass(frozen=True)
class ClassProfile:
    value: Any
    label: str
    prior: float  # share of this class among the model's predictions on the training data
    actual_share: float | None = None  # share in the target column, when it was given


@dataclass(frozen=True)
class ReferenceProfile:
    model: str
    rows: int
    features: tuple[FeatureProfile, ...]  # numeric inputs
    classes: tuple[ClassProfile, ...]  # empty for a regressor
    positive_class: Any = None
    probability_edges: tuple[float, ...] = PROBABILITY_BUCKETS
    probability_cdf: tuple[float, ...] | None = None
    task: str = CLASSIFICATION
    categories: tuple[CategoryProfile, ...] = ()  # categorical inputs
    prediction: FeatureProfile | None = None  # a regressor's predicted values on the training data
    errors: ErrorProfile | None = None  # a regressor's training error, when the target was given
    calibration: Calibration | None = None  # a classifier's probabilities, when a target was given
    probabilities: bool = False  # a classifier that gives probabilities (its quality can be estimated)
    schema_version: int = SCHEMA_VERSION

    @property
    def positive(self) -> ClassProfile | None:
        return next((c for c in self.classes if c.value == self.positive_class), None)

    @property
    def regression(self) -> bool:
        return self.task == REGRESSION

    @property
    def nullable(self) -> tuple[FeatureProfile | CategoryProfile, ...]:
        """The inputs that may be missing, numeric and categorical."""
        inputs: list[FeatureProfile | CategoryProfile] = [*self.features, *self.categories]
        return tuple(f for f in inputs if f.nullable)

    def feature(self, name: str) -> FeatureProfile:
        return next(f for f in self.features if f.name == name)

    def category(self, name: str) -> CategoryProfile:
        return next(c for c in self.categories if c.name == name)

    def served_features(self, features: tuple[Feature, ...]) -> tuple[Feature, ...]:
        """The model's inputs, nullable where the profile found training values missing."""
        nullable = {f.name for f in self.nullable}
        return tuple(replace(f, nullable=f.nullable or f.name in nullable) for f in features)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    def save(self, path: Path) -> Path:
        path.write_text(self.to_json())
        return path

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ReferenceProfile:
        version = raw.get("schema_version")
        if version not in _READABLE_VERSIONS:
            raise ProfileError(
                f"Profile schema version {version} is not {SCHEMA_VERSION}; rebuild it with "
                "`modelmon profile`."
            )
        features = tuple(_feature_from_dict(f) for f in raw["features"])
        classes = tuple(ClassProfile(**c) for c in raw["classes"])
        cdf = raw.get("probability_cdf")
        prediction, errors = raw.get("prediction"), raw.get("errors")
        calibration = raw.get("calibration")
        return cls(
            calibration=_calibration_from_dict(calibration) if calibration else None,
            probabilities=raw.get("probabilities", cdf is not None),
            task=raw.get("task", CLASSIFICATION),
            categories=tuple(_feature_from_dict(c, CategoryProfile) for c in raw.get("categories", ())),
            prediction=_feature_from_dict(prediction) if prediction else None,
            errors=ErrorProfile(**errors) if errors else None,
            model=raw["model"],
            rows=raw["rows"],
            features=features,
            classes=classes,
            positive_class=raw.get("positive_class"),
            probability_edges=tuple(raw.get("probability_edges", PROBABILITY_BUCKETS)),
            probability_cdf=tuple(cdf) if cdf is not None else None,
        )

    @classmethod
    def load(cls, path: Path) -> ReferenceProfile:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ProfileError(
                f"No reference profile at {path}: build it with "
                "`modelmon profile --model MODEL_DIR --data TRAINING.csv`."
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(
                f"The reference profile {path} is not valid JSON ({exc}); rebuild it with "
                "`modelmon profile`."
            ) from None
        try:
            return cls.from_dict(raw)
        except (KeyError, TypeError) as exc:
            raise ProfileError(
                f"The reference profile {path} lacks {exc}; rebuild it with `modelmon profile`."
            ) from None


def _calibration_from_dict(raw: dict[str, Any]) -> Calibration:
    return Calibration(
        classes=tuple(raw["classes"]), knots=tuple(tuple(k) for k in raw["knots"]),
        values=tuple(tuple(v) for v in raw["values"]), rows=raw["rows"], source=raw["source"],
        ece_before=raw["ece_before"], ece_after=raw["ece_after"], reference=Quality(**raw["reference"]),
        reliability_before=_bins_from(raw.get("reliability_before", ())),
        reliability_after=_bins_from(raw.get("reliability_after", ())),
    )


def _bins_from(raw: Any) -> tuple[tuple[float, float, int], ...]:
    return tuple((float(confidence), float(right), int(rows)) for confidence, right, rows in raw)


def _feature_from_dict(raw: dict[str, Any], kind: Any = FeatureProfile) -> Any:
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return kind(**values)


def category_label(value: Any) -> str:
    """A category as a label value: booleans `true`/`false`, whole floats as integers."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if hasattr(value, "item") else value)


def profile_path(model_dir: Path) -> Path:
    return model_dir / PROFILE_FILE

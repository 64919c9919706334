"""The reference profile: what "normal" looked like on the training data, for one model.

It is the single source of truth for histogram edges, the reference CDF used by drift
(`F_ref`), class labels and priors. The server exports parts of it as gauges so Prometheus
can compare live traffic against it without being told anything else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ModelmonError
from .model import LoadedModel

SCHEMA_VERSION = 1
PROFILE_FILE = "reference_profile.json"

# Buckets of the rank histogram: F_ref(x) of each live value. Uniform when nothing drifted.
QUANTILE_BUCKETS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 11))
PROBABILITY_BUCKETS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 21))
_CDF_POINTS = 512  # enough knots that F_ref is exact to well under a bucket's width


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

    def rank(self, values: np.ndarray) -> np.ndarray:
        """F_ref(x): the training share below x (mid-rank at ties), 0 below min, 1 above max."""
        ranks: np.ndarray = np.interp(values, self.cdf_values, self.cdf_ranks, left=0.0, right=1.0)
        return ranks


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
    features: tuple[FeatureProfile, ...]
    classes: tuple[ClassProfile, ...]
    positive_class: Any = None
    probability_edges: tuple[float, ...] = PROBABILITY_BUCKETS
    probability_cdf: tuple[float, ...] | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def positive(self) -> ClassProfile | None:
        return next((c for c in self.classes if c.value == self.positive_class), None)

    def feature(self, name: str) -> FeatureProfile:
        return next(f for f in self.features if f.name == name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    def save(self, path: Path) -> Path:
        path.write_text(self.to_json())
        return path

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ReferenceProfile:
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ProfileError(
                f"Profile schema version {version} is not {SCHEMA_VERSION}; rebuild it with "
                "`modelmon profile`."
            )
        features = tuple(_feature_from_dict(f) for f in raw["features"])
        classes = tuple(ClassProfile(**c) for c in raw["classes"])
        cdf = raw.get("probability_cdf")
        return cls(
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


def _feature_from_dict(raw: dict[str, Any]) -> FeatureProfile:
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return FeatureProfile(**values)


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
    )
    reference = _bucket_shares(profile.rank(present), QUANTILE_BUCKETS)
    return FeatureProfile(**{**asdict(profile), "quantile_reference": reference})


def build_profile(model: LoadedModel, data: pd.DataFrame, target: str | None = None) -> ReferenceProfile:
    """Profile the inputs and the model's own outputs on its training data."""
    missing = [f for f in model.feature_names if f not in data.columns]
    if missing:
        raise ProfileError(
            f"The data lacks the model's input column(s) {', '.join(missing)}; pass the training "
            "CSV the model was fitted on."
        )
    target = target or model.config.target
    if target is not None and target not in data.columns:
        raise ProfileError(f"The data has no target column {target!r}; pass --target with one it has.")
    features = tuple(
        profile_feature(f.name, f.kind, data[f.name], f.edges, f.minimum, f.maximum)
        for f in model.features
        if f.numeric
    )
    complete = data.dropna(subset=model.feature_names)
    prediction = model.predict(model.frame({f: complete[f].tolist() for f in model.feature_names}))
    values = [v.item() if hasattr(v, "item") else v for v in prediction.values]
    class_values = list(prediction.classes) if prediction.classes is not None else sorted(set(values))
    if target is not None:
        class_values = sorted(set(class_values) | set(complete[target].dropna().tolist()))
    predicted = pd.Series(values)
    actual = complete[target] if target is not None else None
    classes = tuple(
        ClassProfile(
            value=v,
            label=model.config.classes.get(v, str(v)),
            prior=float((predicted == v).mean()),
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
    return ReferenceProfile(
        model=model.name,
        rows=len(data),
        features=features,
        classes=classes,
        positive_class=positive,
        probability_cdf=probability_cdf,
    )


def profile_path(model_dir: Path) -> Path:
    return model_dir / PROFILE_FILE


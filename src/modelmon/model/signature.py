"""What a model takes and gives, read without loading it: the inputs of its MLflow signature
(names, types, categorical or numeric, nullable), what `modelmon.yaml` adds to them, and the
`MLmodel` file's flavors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelmon.errors import ModelmonError
from modelmon.model.files import MODEL_CONFIG_FILE

CLASSIFICATION = "classification"


REGRESSION = "regression"


TASKS = (CLASSIFICATION, REGRESSION)


# MLflow signature types -> (feature kind, pandas dtype the model was trained with).
_TYPES: dict[str, tuple[str, str]] = {
    "long": ("integer", "int64"),
    "integer": ("integer", "int32"),
    "double": ("float", "float64"),
    "float": ("float", "float32"),
    "boolean": ("boolean", "bool"),
    "string": ("string", "object"),
}


class ModelLoadError(ModelmonError):
    """A model directory that cannot be served; the message says what to do."""


@dataclass(frozen=True)
class Feature:
    """One input column, as the signature and the model's settings declare it."""

    name: str
    kind: str  # integer | float | boolean | string
    dtype: str
    minimum: float | None = None
    maximum: float | None = None
    edges: tuple[float, ...] | None = None  # configured histogram edges, if any
    categorical: bool = False  # strings and booleans, and integers declared `categorical: true`
    nullable: bool = False  # may be null or absent: the signature says not required, or modelmon.yaml

    @property
    def numeric(self) -> bool:
        """Monitored as a distribution of numbers (rank histogram, KS, PSI over bins)."""
        return self.kind in ("integer", "float") and not self.categorical

    @property
    def column_dtype(self) -> str:
        """The array type requests are typed to: a missing integer is NaN, so it needs floats;
        a missing boolean is None, so it needs objects."""
        if self.nullable:
            return {"integer": "float64", "boolean": "object"}.get(self.kind, self.dtype)
        return self.dtype


@dataclass(frozen=True)
class ModelConfig:
    """The user's declarations that a signature cannot carry: names, labels, bounds, edges,
    the task, which integer inputs are categories and which inputs may be missing."""

    name: str | None = None
    task: str | None = None  # classification | regression; detected when not said
    target: str | None = None
    classes: dict[Any, str] = field(default_factory=dict)
    positive_class: Any = None
    features: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, model_dir: Path) -> ModelConfig:
        path = model_dir / MODEL_CONFIG_FILE
        if not path.exists():
            return cls()
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ModelLoadError(f"{path} is not valid YAML ({exc}); fix or delete it.") from None
        task = raw.get("task")
        if task not in (None, *TASKS):
            raise ModelLoadError(f"{path}: task is {task!r}; write one of {', '.join(TASKS)}, or leave it out "
                                 "to let modelmon tell from the model.")
        return cls(
            name=raw.get("name"),
            task=task,
            target=raw.get("target"),
            classes={k: str(v) for k, v in (raw.get("classes") or {}).items()},
            positive_class=raw.get("positive_class"),
            features=raw.get("features") or {},
        )


@dataclass(frozen=True)
class MLmodel:
    """What the `MLmodel` file says, read as YAML: MLflow's own reader is not needed for it."""

    flavors: dict[str, dict[str, Any]]
    run_id: str
    model_uuid: str
    inputs: list[dict[str, Any]] | None  # the signature's input columns, None without a signature

    @classmethod
    def read(cls, model_dir: Path) -> MLmodel:
        path = model_dir / "MLmodel"
        try:
            raw = yaml.safe_load(path.read_text()) or {}
            signature = raw.get("signature") or {}
            inputs = signature.get("inputs")
            parsed = json.loads(inputs) if isinstance(inputs, str) else inputs
        except (OSError, yaml.YAMLError, json.JSONDecodeError, AttributeError) as exc:
            raise ModelLoadError(f"{path} cannot be read ({type(exc).__name__}); save the model again with "
                                 "mlflow.<flavor>.save_model.") from None
        return cls(flavors=dict(raw.get("flavors") or {}), run_id=str(raw.get("run_id") or ""),
                   model_uuid=str(raw.get("model_uuid") or ""),
                   inputs=parsed if isinstance(parsed, list) else None)

    @property
    def flavor(self) -> str:
        """The model's own flavor (the first that is not python_function)."""
        return next((f for f in self.flavors if f != "python_function"), "python_function")


def features_from_signature(meta: MLmodel, config: ModelConfig, path: Path) -> tuple[Feature, ...]:
    inputs = meta.inputs
    if not inputs or not all(isinstance(spec, dict) and spec.get("name") for spec in inputs):
        raise ModelLoadError(
            f"The model at {path} has no named input signature; save it with a signature "
            "(mlflow's infer_signature) so modelmon knows its features."
        )
    features = []
    for spec in inputs:
        name, type_name = str(spec["name"]), str(spec.get("type"))
        if type_name not in _TYPES:
            raise ModelLoadError(
                f"Input {name!r} of the model at {path} has type {type_name}, which modelmon "
                f"cannot serve yet; supported types: {', '.join(_TYPES)}."
            )
        kind, dtype = _TYPES[type_name]
        declared = config.features.get(name) or {}
        edges = declared.get("edges")
        categorical = bool(declared.get("categorical", kind in ("string", "boolean")))
        if categorical and kind == "float":
            raise ModelLoadError(f"{path / MODEL_CONFIG_FILE}: input {name!r} is a float and cannot be "
                                 "declared categorical; only integers, strings and booleans can.")
        features.append(
            Feature(
                name=name,
                kind=kind,
                dtype=dtype,
                minimum=declared.get("minimum"),
                maximum=declared.get("maximum"),
                edges=tuple(float(e) for e in edges) if edges else None,
                categorical=categorical,
                nullable=bool(declared.get("nullable", not spec.get("required", True))),
            )
        )
    return tuple(features)

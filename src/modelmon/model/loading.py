"""Load any MLflow pyfunc model and predict with it, through its native flavor when it has one.

Everything the server and the profile need to know about a model comes from its MLflow
metadata (signature, flavors, run id, read from `MLmodel` as YAML) plus the optional
`modelmon.yaml` beside `MLmodel`. A scikit-learn model is deserialised as MLflow's own loader
would, without importing MLflow (a second and 50 MB at start); other flavors load through
`mlflow.pyfunc`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelmon.model.signature import (
    CLASSIFICATION,
    REGRESSION,
    Feature,
    MLmodel,
    ModelConfig,
    ModelLoadError,
    features_from_signature,
)
from modelmon.model.source import read_origin

_log = logging.getLogger("modelmon.model.loading")


# Flavors whose raw model modelmon calls directly (predict_proba, the matrix fast path).
_NATIVE_FLAVORS = ("sklearn", "lightgbm")


# How far a probability computed from a matrix may lie from the one computed from the DataFrame
# (absolute, and relative to the value) for the two to count as the same answer.
# A DataFrame reaches BLAS column-major and a stacked matrix row-major, so OpenBLAS may sum the
# same products in another order: the results then differ in their last bits (8.6e-23 was seen
# on the stores model with scikit-learn 1.9.1 and NumPy 2.4.6). Reordering a sum of n float64
# terms moves it by at most about n * 2**-52 * sum(|term|), and a probability moves by at most a
# quarter of its logit's change: for the tens to hundreds of scaled terms of a served model that
# stays under 1e-12. A model that really answers a matrix differently (columns picked by name,
# another preprocessing) moves probabilities by 1e-3 and more on the 64 probe rows. 2**-30
# (9.3e-10) keeps about 30 of float64's 53 bits: three orders of magnitude above the noise and
# six below a real difference. Classes and predicted values must be identical all the same.
PROBABILITY_TOLERANCE = 2.0 ** -30


@dataclass
class Prediction:
    """Model output for a batch of rows: raw class values and, when known, class probabilities."""

    values: np.ndarray
    probabilities: np.ndarray | None = None  # shape (rows, len(classes)), column order = classes
    classes: tuple[Any, ...] | None = None


class LoadedModel:
    """A served model: the native estimator for speed, MLflow's pyfunc (loaded only when
    needed) for flavors modelmon does not call directly."""

    def __init__(self, path: Path, meta: MLmodel, config: ModelConfig, native: Any = None) -> None:
        self.path = path
        self.meta = meta
        self.config = config
        self._pyfunc: Any = None
        self.run_id = meta.run_id
        self.version = meta.model_uuid[:12]
        self.registered_name = self.alias = ""
        origin = read_origin(path)  # a folder fetched from a tracking server: the registry's identity
        if origin is not None:
            self.version = origin.label_version or self.version
            self.registered_name, self.alias = origin.registered_name, origin.alias
            self.run_id = origin.run_id or self.run_id
        # The `model` label: what modelmon.yaml says, else the registry's name (a fetched folder
        # is named for its version, and each version would look like another model), else the folder's.
        self.name = config.name or self.registered_name or path.resolve().name
        self.flavor = meta.flavor
        self.features = features_from_signature(meta, config, path)
        if native is None:  # served through pyfunc: it fails to load here, not on the first request
            pyfunc = self.pyfunc
            native = _native_estimator(pyfunc) if self.flavor in _NATIVE_FLAVORS else None
        self._native = native
        classes = getattr(self._native, "classes_", None)
        self.classes: tuple[Any, ...] | None = tuple(_plain(c) for c in classes) if classes is not None else None
        # Set by the checks below, each on probe rows: one predict_proba call answers both
        # (its argmax is the class predict gives), and a plain matrix answers as the DataFrame.
        self._argmax: np.ndarray | None = None
        self._matrix = False
        self.path_reason = ""  # why a native model is not called on a matrix (empty when it is)
        if self._native is not None and self.flavor != "sklearn" and not self._same_as_pyfunc():
            self._native, self.classes = None, None
        if self._native is not None and self.classes is not None and self.has_probabilities:
            self._argmax = self._argmax_classes()
        if self._native is not None:
            if all(f.numeric and not f.nullable for f in self.features):
                self.path_reason = self._matrix_differs() or ""
                level = logging.WARNING  # a numeric model off the fast path: slower, and said so
            else:
                self.path_reason, level = "an input is categorical or may be missing", logging.INFO
            self._matrix = not self.path_reason
            if self.path_reason:
                _log.log(level, "model %s: the estimator is called on DataFrames, not on a plain matrix: %s",
                         self.name, self.path_reason)
        if self._matrix:
            # The fast path is taken only for a model that answers a matrix exactly as the
            # DataFrame (checked above); scikit-learn's warning on each such call that the
            # matrix has no feature names is noise then. Filtered once, when that is known.
            warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)

    @property
    def pyfunc(self) -> Any:
        """MLflow's pyfunc of the model, loaded on first use: a scikit-learn model is served
        without it (importing MLflow's pyfunc machinery costs a second and 50 MB at start)."""
        if self._pyfunc is None:
            self._pyfunc = _load_pyfunc(self.path)
        return self._pyfunc

    @property
    def predict_path(self) -> str:
        """How each batch reaches the model (one of names.PREDICT_PATHS): a plain matrix to the
        estimator (the fast path), a DataFrame to the estimator, or MLflow's pyfunc."""
        if self._native is None:
            return "pyfunc"
        return "matrix" if self._matrix else "dataframe"

    @property
    def info(self) -> dict[str, str]:
        """Its identity, as `modelmon_model_info`'s labels."""
        return {"version": self.version, "run_id": self.run_id, "flavor": self.flavor,
                "registered_name": self.registered_name, "alias": self.alias, "predict_path": self.predict_path}

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def task_hint(self) -> str | None:
        """What the model says it is: the declared task, else the estimator's own kind."""
        if self.config.task is not None:
            return self.config.task
        native = self._native
        if native is None:
            return None
        if self.classes is not None:
            return CLASSIFICATION
        try:
            from sklearn.base import is_regressor  # LightGBM's scikit-learn wrappers answer it too
        except ImportError:  # pragma: no cover - scikit-learn is a dependency
            return None
        return REGRESSION if is_regressor(native) else None

    @property
    def has_probabilities(self) -> bool:
        return self._native is not None and hasattr(self._native, "predict_proba")

    def frame(self, columns: dict[str, list[Any]], features: tuple[Feature, ...] | None = None) -> pd.DataFrame:
        """Columns typed as the signature says, so the native model sees what pyfunc would."""
        return pd.DataFrame(self.columns(columns, features))

    def columns(self, columns: dict[str, list[Any]], features: tuple[Feature, ...] | None = None) -> dict[str, np.ndarray]:
        """Each input as an array of the signature's type (`features`: the served ones, which
        the profile may have made nullable)."""
        return {f.name: np.asarray(columns[f.name], dtype=f.column_dtype) for f in features or self.features}

    def predict_columns(self, arrays: dict[str, np.ndarray]) -> Prediction:
        """The fast path: a plain matrix when the native model gives the same answers on it
        (checked at load), which skips building a DataFrame and pandas' per-call checks."""
        if self._matrix:
            matrix = np.column_stack([arrays[f.name] for f in self.features])
            return self._predict_native(matrix, checked=True)
        return self.predict(pd.DataFrame(arrays, columns=self.feature_names))

    def _predict_native(self, x: Any, checked: bool = False) -> Prediction:
        """`checked`: `x` is a matrix of finite numbers that modelmon validated, so scikit-learn's
        own finiteness and parameter checks are skipped for this call (its config is per thread)."""
        native = self._native
        assert native is not None, "only models with a native estimator are predicted natively"
        with _trusted_input() if checked and self.flavor == "sklearn" else contextlib.nullcontext():
            if self._argmax is not None:
                probabilities = native.predict_proba(x)
                values = self._argmax[np.argmax(probabilities, axis=1)]
            else:
                values = np.asarray(native.predict(x))
                probabilities = native.predict_proba(x) if self.has_probabilities else None
        return Prediction(values=_as_1d(values), probabilities=probabilities, classes=self.classes)

    def _probe(self) -> dict[str, np.ndarray] | None:
        """64 rows of integers in 0..3000, typed as the signature says; None if an input is not numeric."""
        if not all(f.numeric for f in self.features):
            return None
        rng = np.random.default_rng(0)
        return {f.name: rng.integers(0, 3000, 64).astype(f.dtype) for f in self.features}

    def _argmax_classes(self) -> np.ndarray | None:
        """The classes in predict_proba's column order, if predict gives the class of the highest
        probability on every probe row; None when it does not or cannot be told, and then both
        are called."""
        native, probe = self._native, self._probe()
        if probe is None or native is None:
            return None
        classes = np.asarray(native.classes_)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                frame = pd.DataFrame(probe)
                same = bool(np.array_equal(_as_1d(np.asarray(native.predict(frame))),
                                           classes[np.argmax(native.predict_proba(frame), axis=1)]))
        except Exception:
            return None
        return classes if same else None

    def _matrix_differs(self) -> str | None:
        """Why the native model's answers on a plain matrix differ from those on the DataFrame
        pyfunc sees, or None when they are the same: identical classes or values, probabilities
        within PROBABILITY_TOLERANCE."""
        probe = self._probe()
        if probe is None:
            return "an input is not a number"
        frame = pd.DataFrame(probe)
        try:
            with warnings.catch_warnings():  # the matrix has no feature names: said once below
                warnings.simplefilter("ignore", UserWarning)
                expected = self._predict_native(frame)
                got = self._predict_native(np.column_stack([probe[f.name] for f in self.features]), checked=True)
        except Exception as exc:
            return f"a matrix fails ({type(exc).__name__})"
        return _answers_differ(expected, got)

    def _same_as_pyfunc(self) -> bool:
        """A non-scikit-learn flavor's raw model is used only if it answers as pyfunc does (a
        LightGBM Booster, unlike its scikit-learn wrapper, answers probabilities, say)."""
        probe = self._probe()
        if probe is None:
            return False
        frame = pd.DataFrame(probe)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                native = np.asarray(self._predict_native(frame).values)
                served = _as_1d(self.pyfunc.predict(frame))
        except Exception:
            return False
        return native.shape == served.shape and bool(np.array_equal(native, served))

    def predict(self, frame: pd.DataFrame) -> Prediction:
        if self._native is None:
            return Prediction(values=_as_1d(self.pyfunc.predict(frame)))
        return self._predict_native(frame)


def _answers_differ(expected: Prediction, got: Prediction) -> str | None:
    """Why two answers to the same rows are not the same answer, or None: the classes or values
    must be identical, the probabilities within PROBABILITY_TOLERANCE (see there)."""
    if expected.values.shape != got.values.shape or not np.array_equal(expected.values, got.values):
        return "the predicted classes or values differ"
    if (expected.probabilities is None) != (got.probabilities is None):
        return "one gives probabilities, the other not"
    if expected.probabilities is not None and got.probabilities is not None:
        a, b = np.asarray(expected.probabilities, dtype=float), np.asarray(got.probabilities, dtype=float)
        if a.shape != b.shape:
            return "the probabilities have another shape"
        if not np.allclose(b, a, rtol=PROBABILITY_TOLERANCE, atol=PROBABILITY_TOLERANCE):
            gap = float(np.max(np.abs(a - b)))
            return f"the probabilities differ by up to {gap:.3g}, over the tolerance {PROBABILITY_TOLERANCE:.3g}"
    return None


@contextlib.contextmanager
def _trusted_input() -> Iterator[None]:
    """scikit-learn without the checks modelmon's validation has already made (finite numbers,
    parameters fixed at fit): 260 -> 200 us a call on the stores model, measured."""
    import sklearn

    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        yield


def _plain(value: Any) -> Any:
    """NumPy scalars to Python ones, so they serialise and compare with YAML keys."""
    return value.item() if hasattr(value, "item") else value


def _as_1d(output: Any) -> np.ndarray:
    if isinstance(output, pd.DataFrame):
        column = "prediction" if "prediction" in output.columns else output.columns[0]
        values: np.ndarray = output[column].to_numpy()
        return values
    array = np.asarray(output)
    return array[:, 0] if array.ndim > 1 else array


def _native_estimator(pyfunc: Any) -> Any:
    try:
        raw = pyfunc.get_raw_model()
    except Exception:
        return None
    return raw if hasattr(raw, "predict") else None


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Load a model directory, or explain in one sentence why it cannot be served.

    A scikit-learn model is deserialised here as MLflow's own loader would (skops with the
    trusted types its MLmodel lists, or (cloud)pickle) without importing MLflow; every other
    flavor goes through `mlflow.pyfunc.load_model`."""
    model_dir = Path(path)
    if not (model_dir / "MLmodel").is_file():
        raise ModelLoadError(
            f"No MLflow model at {model_dir} (no MLmodel file): pass the directory that "
            "mlflow.<flavor>.save_model wrote, or run `modelmon train` for the stores model."
        )
    config = ModelConfig.read(model_dir)
    meta = MLmodel.read(model_dir)
    native = None
    if meta.flavor == "sklearn":
        with _explained(model_dir):
            native = _load_sklearn(model_dir, meta.flavors["sklearn"])
    return LoadedModel(model_dir, meta, config, native)


@contextlib.contextmanager
def _explained(model_dir: Path) -> Iterator[None]:
    """Any failure to deserialise as one sentence naming the folder and what to check."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except ModelLoadError:
        raise
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"Could not load the MLflow model at {model_dir} ({first_line}); check that it was "
            "saved completely and that its flavor's packages are installed."
        ) from None


def _load_sklearn(model_dir: Path, conf: dict[str, Any]) -> Any:
    """The estimator of an `sklearn` flavor, or None to leave it to pyfunc (code paths to
    import, a format this reader does not know, deserialisation switched off)."""
    fmt = conf.get("serialization_format", "cloudpickle")
    allowed = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower() in ("true", "1")
    if conf.get("code") or not conf.get("pickled_model") or fmt not in ("skops", "pickle", "cloudpickle") \
            or not allowed:
        return None
    file = model_dir / str(conf["pickled_model"])
    if fmt == "skops":
        import skops.io

        return skops.io.load(file, trusted=conf.get("skops_trusted_types"))
    with file.open("rb") as stream:
        if fmt == "pickle":
            return pickle.load(stream)
        import cloudpickle  # type: ignore[import-untyped]

        return cloudpickle.load(stream)


def _load_pyfunc(model_dir: Path) -> Any:
    with _explained(model_dir):
        import mlflow.pyfunc  # imported late: it is slow, and most models are served without it

        logging.getLogger("mlflow").setLevel(logging.ERROR)
        return mlflow.pyfunc.load_model(str(model_dir))

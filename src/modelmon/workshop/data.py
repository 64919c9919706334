"""The embedded stores dataset: seeded, so the committed CSV can be re-made byte for byte.

The figures are those of the public workshop's data (896 stores, items ~ 1782 +- 300,
customers ~ 786 +- 265, a quarter of them successful), so the demo tells the same story.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelmon.errors import ModelmonError

FEATURES = ("items_count", "customers_count")
TARGET = "success"

ROWS = 896
SEED = 20240611
# Fresh rows of the same stores, never fitted on, calibrate the bundled model's probabilities
# (data/stores-calibration.csv is this, written by `modelmon data generate`).
CALIBRATION_ROWS = 2000
CALIBRATION_SEED = 1
ITEMS_MEAN, ITEMS_SD = 1782.0, 300.0
CUSTOMERS_MEAN, CUSTOMERS_SD = 786.0, 265.0
SUCCESS_SHARE = 0.25


class DataError(ModelmonError):
    """A data file that cannot be read; the message says what to do."""

def _standardized(rng: np.random.Generator, mean: float, sd: float, size: int) -> np.ndarray:
    """Normal draws rescaled so the sample itself has the workshop's mean and sd."""
    raw = rng.normal(size=size)
    raw = (raw - raw.mean()) / raw.std(ddof=1)
    values: np.ndarray = np.clip(np.rint(mean + sd * raw), 0, None).astype("int64")
    return values


def generate_stores(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    """Stores whose success depends mostly on customers above ~950, spoiled by extreme stock."""
    rng = np.random.default_rng(seed)
    items = _standardized(rng, ITEMS_MEAN, ITEMS_SD, rows)
    customers = _standardized(rng, CUSTOMERS_MEAN, CUSTOMERS_SD, rows)
    # A latent score: customers drive success; too few or too many items hurt it a little.
    # The noise keeps the classes overlapping, so a linear model reaches ~96 %, not 100 %.
    items_z = (items - ITEMS_MEAN) / ITEMS_SD
    penalty = 60.0 * np.clip(np.abs(items_z) - 1.5, 0, None)
    latent = customers - penalty + rng.normal(scale=35.0, size=rows)
    n_success = round(SUCCESS_SHARE * rows)
    order = np.argsort(-latent, kind="stable")
    success = np.zeros(rows, dtype="int64")
    success[order[:n_success]] = 1
    return pd.DataFrame({"items_count": items, "customers_count": customers, TARGET: success})


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write with fixed formatting so the file is reproducible across platforms."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


def read_csv(path: Path) -> pd.DataFrame:
    """Read a training CSV, with a sentence the user can act on when it is not there."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"No data file at {path}: run `modelmon data generate` or pass --data PATH.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a CSV file pandas can read ({type(exc).__name__}); "
                        "pass the training data as CSV with a header row.") from None

"""Models of every kind modelmon serves, built from seeded data the way a team would save them.

Each builder writes an MLflow model directory and its training CSV under `root`, profiles it
with the CLI (as a user would) and returns the model directory.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelmon.cli import main as cli_main

COUNTRIES = {"de": 0.5, "fr": 0.3, "it": 0.2}


def _save_sklearn(model: Any, x: pd.DataFrame, out: Path) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(model, str(out), signature=infer_signature(x, model.predict(x)),
                                  serialization_format="cloudpickle")


def _profile(model_dir: Path, csv: Path, target: str, name: str | None = None, profile: bool = True) -> Path:
    """Profile as a user would (unless `profile` is false), naming the model in its modelmon.yaml."""
    if name:
        (model_dir / "modelmon.yaml").write_text(f"name: {name}\n")
    if not profile:
        return model_dir
    assert cli_main(["profile", "--model", str(model_dir), "--data", str(csv), "--target", target]) == 0
    return model_dir


def houses(n: int = 2000, seed: int = 3) -> pd.DataFrame:
    """Prices from square metres and rooms, with noise: a regression target of many values."""
    rng = np.random.default_rng(seed)
    sqft = rng.normal(120, 35, n).clip(20, None).round(1)
    rooms = rng.integers(1, 7, n)
    price = 1500 * sqft + 8000 * rooms + rng.normal(0, 20000, n)
    return pd.DataFrame({"sqft": sqft, "rooms": rooms, "price": price.round(2)})


def build_regressor(root: Path, profile: bool = True) -> Path:
    """The issue's Ridge regression on two numeric inputs."""
    from sklearn.linear_model import Ridge

    frame = houses()
    x = frame[["sqft", "rooms"]]
    _save_sklearn(Ridge().fit(x, frame["price"]), x, root / "model")
    frame.to_csv(root / "houses.csv", index=False)
    return _profile(root / "model", root / "houses.csv", "price", "houses", profile)


def payments(n: int = 3000, seed: int = 5, missing: float = 0.1) -> pd.DataFrame:
    """Fraud from a country (string) and an amount that is sometimes missing: a payment is
    fraud when amount / 100 - (country is "de") + N(0, 0.1) > 1 (the scenarios' truth rule)."""
    rng = np.random.default_rng(seed)
    country = rng.choice(list(COUNTRIES), n, p=list(COUNTRIES.values()))
    amount = rng.normal(75, 25, n).clip(1, None).round(2)
    fraud = amount / 100 - (country == "de") + rng.normal(0, 0.1, n) > 1
    amount[rng.random(n) < missing] = np.nan
    return pd.DataFrame({"country": country, "amount": amount, "fraud": fraud.astype(int)})


def build_categorical(root: Path, profile: bool = True) -> Path:
    """A pipeline: `country` one-hot encoded, `amount` imputed; a binary classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = payments()
    x = frame[["country", "amount"]]
    prepare = ColumnTransformer([("country", OneHotEncoder(handle_unknown="ignore"), ["country"]),
                                 ("amount", SimpleImputer(), ["amount"])])
    model = make_pipeline(prepare, LogisticRegression(max_iter=1000)).fit(x, frame["fraud"])
    _save_sklearn(model, x, root / "model")
    frame.to_csv(root / "payments.csv", index=False)
    return _profile(root / "model", root / "payments.csv", "fraud", "payments", profile)


def build_string_classes(root: Path) -> Path:
    """Iris with the species' names as classes: a multiclass model with string labels."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "_cm").replace(" ", "_"))
    frame["species"] = np.asarray(iris.target_names)[frame.pop("target")]
    x = frame.drop(columns="species")
    _save_sklearn(LogisticRegression(max_iter=1000).fit(x, frame["species"]), x, root / "model")
    frame.to_csv(root / "iris.csv", index=False)
    return _profile(root / "model", root / "iris.csv", "species")


def build_lightgbm(root: Path) -> Path:
    """A LightGBM classifier saved with MLflow's lightgbm flavor."""
    import lightgbm
    import mlflow.lightgbm
    from mlflow.models import infer_signature

    frame = houses()
    frame["expensive"] = (frame.pop("price") > 220_000).astype(int)
    x = frame[["sqft", "rooms"]]
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, frame["expensive"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.lightgbm.save_model(model, str(root / "model"), signature=infer_signature(x, model.predict(x)))
    frame.to_csv(root / "houses.csv", index=False)
    return _profile(root / "model", root / "houses.csv", "expensive")


_DOUBLER = """
import mlflow.pyfunc
import numpy as np
from mlflow.models import set_model


class Doubler(mlflow.pyfunc.PythonModel):
    \"\"\"A team's own model code: twice the sum of its inputs.\"\"\"

    def predict(self, context, model_input, params=None):
        return np.asarray(2.0 * (model_input["a"] + model_input["b"]), dtype="float64")


set_model(Doubler())
"""


def build_custom_pyfunc(root: Path) -> Path:
    """A custom mlflow.pyfunc.PythonModel saved as code (MLflow's models-from-code, no pickle),
    with no native flavor: a regressor by its fractional outputs."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"a": rng.normal(10, 2, 500).round(3), "b": rng.normal(5, 1, 500).round(3)})
    frame["y"] = 2 * (frame["a"] + frame["b"]) + rng.normal(0, 0.5, 500)
    x = frame[["a", "b"]]
    code = root / "doubler.py"
    code.write_text(_DOUBLER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(str(root / "model"), python_model=str(code),
                                 signature=infer_signature(x, 2.0 * (x["a"] + x["b"])))
    frame.to_csv(root / "ab.csv", index=False)
    return _profile(root / "model", root / "ab.csv", "y")


_BUILDERS = {"houses": build_regressor, "payments": build_categorical}


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.kinds houses|payments DIR`: the README's example models, with their CSV.

    Writes DIR/model (an MLflow model, not yet profiled) and DIR/<name>.csv, so the README's
    `modelmon profile` step can be run as written."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.kinds", description=main.__doc__)
    parser.add_argument("name", choices=sorted(_BUILDERS))
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    _BUILDERS[args.name](args.out, profile=False)
    print(f"wrote {args.out / 'model'} and {args.out / (args.name + '.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

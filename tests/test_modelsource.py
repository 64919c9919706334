"""Models named by MLflow URI: resolved against a real tracking store, fetched once, served with
the registry's version, and followed when their alias moves (`modelsource`, `follow`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from modelmon.cli import main
from modelmon.contract import names as N
from modelmon.model.files import ORIGIN_FILE
from modelmon.model.loading import load_model
from modelmon.model.reference import ProfileError, ReferenceProfile, profile_path
from modelmon.model.source import ModelSourceError, fetch, locate, read_origin, resolve
from modelmon.serving.app import create_app
from modelmon.settings import Settings
from modelmon.targets.host import free_port

from .conftest import STORES_DIR, build_iris
from .registry import client, register, shifted_stores, without_profile

ROW = {"items_count": 1800, "customers_count": 800}
DATA = STORES_DIR.parents[1] / "data" / "stores.csv"


@pytest.fixture()
def tracking(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MODELMON_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # whatever MLflow writes relative to the working folder stays out of the repo
    register(uri, STORES_DIR, alias="champion", artifacts=tmp_path / "artifacts")
    return uri


def _series(client_: TestClient) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(client_.get("/metrics").text) for s in family.samples}


def _by(series, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, labels), v in series.items():
        if n == name:
            out[dict(labels)[label]] = out.get(dict(labels)[label], 0) + v
    return out


def test_an_alias_is_served_as_the_registrys_version(tracking, tmp_path):
    folder = resolve("models:/stores@champion")
    assert read_origin(folder).version == "1" and (folder / "MLmodel").is_file()
    model = load_model(folder)
    assert (model.version, model.registered_name, model.alias) == ("1", "stores", "champion")
    app = TestClient(create_app(model, ReferenceProfile.load(profile_path(folder)), Settings(prediction_log="off")))
    assert app.get("/predict", params=ROW).status_code == 200
    series = _series(app)
    info = {k: v for (name, labels), v in series.items() if name == N.MODEL_INFO.name for k in [labels]}
    assert [dict(k) for k in info] == [{"model": "stores", "version": "1", "run_id": model.run_id, "flavor": "sklearn",
                                        "registered_name": "stores", "alias": "champion",
                                        "predict_path": "matrix"}]
    assert _by(series, N.PREDICTIONS.total, "version") == {"1": 1}
    # Downloaded once: the second resolution reads the cache, even with the server gone.
    assert resolve("models:/stores/1") == folder


def test_a_uri_that_does_not_resolve_says_what_was_tried(tracking, capsys):
    for uri, says in (("models:/nosuch@champion", "nosuch"), ("models:/stores@nosuch", "nosuch"),
                      ("models:/stores/9", "9"), ("models:/stores", "not a model URI")):
        with pytest.raises(ModelSourceError) as error:
            locate(uri)
        message = str(error.value)
        assert says in message and "\n" not in message
        if "not a model URI" not in message:
            assert uri in message and tracking in message
    assert main(["serve", "--model", "models:/nosuch@champion", "--port", str(free_port("127.0.0.1"))]) == 2
    assert capsys.readouterr().err.startswith("modelmon: Could not resolve models:/nosuch@champion")


def test_an_unreachable_tracking_server_is_one_sentence(monkeypatch, tmp_path):
    down = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    with pytest.raises(ModelSourceError, match=f"No MLflow tracking server answers at {down}"):
        locate("models:/stores@champion")


def test_the_profile_travels_with_the_version(tracking, tmp_path):
    """Logged to the version's run by `modelmon profile --model URI`, read back by every fetch
    of that URI, even by a server that never saw the training data."""
    version = register(tracking, without_profile(tmp_path / "bare"))
    uri = f"models:/stores/{version}"
    with pytest.raises(ProfileError, match="No reference profile"):
        ReferenceProfile.load(profile_path(resolve(uri)))
    assert main(["profile", "--model", uri, "--data", str(DATA),
                 "--target", "success"]) == 0
    logged = client(tracking).list_artifacts(locate(uri).run_id, f"modelmon/models/stores/{version}")
    assert [Path(a.path).name for a in logged] == ["reference_profile.json"]
    other_cache = tmp_path / "elsewhere"  # another replica: its own cache, the profile from the run
    folder = fetch(locate(uri), other_cache)
    assert folder.is_relative_to(other_cache)
    assert ReferenceProfile.load(profile_path(folder)).model == "stores"


def _follow(tracking: str, tmp_path: Path) -> tuple[TestClient, object]:
    origin = locate("models:/stores@champion")
    folder = fetch(origin)
    settings = Settings(prediction_log=str(tmp_path / "log.sqlite"), follow_alias="1s")
    app = create_app(load_model(folder), ReferenceProfile.load(profile_path(folder)), settings, follow=origin)
    return TestClient(app), app.state.follower


def test_following_the_alias_switches_versions_between_requests(tracking, tmp_path):
    served, follower = _follow(tracking, tmp_path)
    before = [served.get("/predict", params=ROW).json()["request_id"] for _ in range(3)]
    reference = _by(_series(served), N.FEATURE_VALUE_REFERENCE.name, N.BOUND)
    assert follower.check() is None  # the alias has not moved
    version = register(tracking, shifted_stores(tmp_path / "v2"), alias="champion")
    assert follower.check() == version == "2"
    after = [served.get("/predict", params=ROW).json()["request_id"] for _ in range(2)]
    assert served.get("/ready").json()["version"] == "2"
    # Labels for predictions made before the switch are still found, and counted for version 1.
    assert served.post("/feedback", json=[{"request_id": i, "actual": "normal"} for i in before + after]).status_code == 200
    series = _series(served)
    assert _by(series, N.PREDICTIONS.total, "version") == {"1": 3, "2": 2}
    assert _by(series, N.FEEDBACK.total, "version") == {"1": 3, "2": 2}
    assert {dict(k)["version"]: v for (n, k), v in series.items() if n == N.MODEL_INFO.name} == {"1": 0, "2": 1}
    assert _by(series, N.MODEL_RELOADS.total, "result") == {"switched": 1, "failed": 0}
    # The drift reference is the new version's: its training customers were 400 higher.
    assert _by(series, N.FEATURE_VALUE_REFERENCE.name, N.BOUND) != reference
    served_profile = ReferenceProfile.load(profile_path(resolve("models:/stores/2")))
    assert served_profile.feature("customers_count").mean == pytest.approx(
        ReferenceProfile.load(profile_path(STORES_DIR)).feature("customers_count").mean + 400, abs=60)


def test_a_version_that_cannot_serve_leaves_the_old_one_serving(tracking, tmp_path):
    served, follower = _follow(tracking, tmp_path)
    iris = build_iris(tmp_path / "iris") / "model"
    register(tracking, iris, alias="champion")  # other inputs: not a version of this model's API
    assert follower.check() is None
    assert follower.check() is None  # not tried again until the alias moves
    assert served.get("/predict", params=ROW).status_code == 200
    series = _series(served)
    assert _by(series, N.MODEL_RELOADS.total, "result") == {"switched": 0, "failed": 1}
    assert _by(series, N.PREDICTIONS.total, "version") == {"1": 1}
    assert served.get("/ready").json()["version"] == "1"


def test_follow_alias_needs_an_alias(tracking, capsys):
    assert main(["serve", "--model", "models:/stores/1", "--follow-alias", "5s",
                 "--port", str(free_port("127.0.0.1"))]) == 2
    assert "models:/NAME@ALIAS" in capsys.readouterr().err


def test_the_origin_file_is_what_was_resolved(tracking):
    folder = resolve("models:/stores@champion")
    kept = json.loads((folder / ORIGIN_FILE).read_text())
    assert kept["registered_name"] == "stores" and kept["version"] == "1" and kept["tracking_uri"] == tracking


def test_a_model_logged_the_mlflow_3_way_is_profiled_and_served(tracking, tmp_path):
    """`log_model(..., registered_model_name=...)` inside a run, as the README's first step
    says: the version points at a logged model, the profile goes to the run."""
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    data = pd.read_csv(DATA)
    x, y = data[["items_count", "customers_count"]], data["success"]
    fitted = LogisticRegression(max_iter=1000).fit(x, y)
    mlflow.create_experiment("modelmon-mlflow3", artifact_location=(tmp_path / "logged").as_uri())
    mlflow.set_experiment("modelmon-mlflow3")
    with mlflow.start_run():
        mlflow.sklearn.log_model(fitted, name="model", signature=infer_signature(x, fitted.predict(x)),
                                 registered_model_name="fresh", serialization_format="skops",
                                 skops_trusted_types=["numpy.dtype"])
    assert main(["profile", "--model", "models:/fresh/1", "--data", str(DATA),
                 "--target", "success"]) == 0
    folder = fetch(locate("models:/fresh/1"), tmp_path / "replica")
    model = load_model(folder)
    assert (model.registered_name, model.version) == ("fresh", "1")
    app = TestClient(create_app(model, ReferenceProfile.load(profile_path(folder)), Settings(prediction_log="off")))
    assert app.get("/predict", params=ROW).json()["prediction"] == int(fitted.predict(pd.DataFrame([ROW]))[0])


def test_the_readmes_registration_example_registers_a_servable_version(tracking):
    """README "Serve from the Model Registry", step 1: examples/register_model.py."""
    import importlib

    example = importlib.import_module("examples.register_model")
    assert example.register(STORES_DIR, "readme", "champion") == "1"
    assert example.register(STORES_DIR, "readme", "champion") == "2"
    assert load_model(resolve("models:/readme@champion")).version == "2"


def test_a_registered_model_without_a_declared_name_is_labelled_with_its_registered_name(tracking, tmp_path):
    """Its folder in the cache is named for the version: each version used to look like another
    model (`model="1"`, then `model="2"`) to every per-model rule and panel."""
    import shutil

    unnamed = tmp_path / "unnamed"
    shutil.copytree(STORES_DIR, unnamed)
    (unnamed / "modelmon.yaml").write_text("\n".join(line for line in (unnamed / "modelmon.yaml").read_text()
                                                     .splitlines() if not line.startswith("name:")) + "\n")
    for _ in range(2):
        register(tracking, unnamed, name="holdout-clf", alias="champion", artifacts=tmp_path / "artifacts")
    names = {version: load_model(resolve(f"models:/holdout-clf/{version}")).name for version in ("1", "2")}
    assert names == {"1": "holdout-clf", "2": "holdout-clf"}
    assert load_model(resolve("models:/holdout-clf@champion")).name == "holdout-clf"
    assert load_model(unnamed).name == "unnamed"  # a plain folder keeps its own name

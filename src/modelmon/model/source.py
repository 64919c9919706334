"""Where a model comes from: a local MLflow model folder, or an MLflow model URI.

Teams that use MLflow name models by URI - `models:/fraud@champion` (an alias of the Model
Registry), `models:/fraud/7` (a version), `runs:/<run id>/model` - resolved against the
tracking server that `MLFLOW_TRACKING_URI` names. Everything downstream (the server, the
processes of `modelmon up`, the stack renders, the collector) reads a local folder, so a URI is
resolved once with MLflow's own client and downloaded into a cache folder that describes
itself: `ORIGIN_FILE` beside `MLmodel` keeps the registered name, version and alias, and
`load_model` reads it, so the registry's version becomes the `version` label wherever that
folder is served. A plain folder works as before.

The reference profile travels with the model: `modelmon profile --model URI` logs it as an
artifact of the version's run (`profile_artifact`), and fetching a URI brings it back beside the
model, so every replica that serves the URI finds the same one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from modelmon.errors import ModelmonError
from modelmon.model.files import ORIGIN_FILE, PROFILE_FILE

_SCHEMES = ("models", "runs")
_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/@]+))/?$")
_RUNS = re.compile(r"^runs:/(?P<run>[0-9a-zA-Z]+)/(?P<path>.+?)/?$")


class ModelSourceError(ModelmonError):
    """A model URI that does not resolve: says what was tried and what to do."""


@dataclass(frozen=True)
class Origin:
    """What a model URI named, resolved: `version` is the registry's version number (for an
    alias, the version it pointed at when resolved)."""

    uri: str
    tracking_uri: str
    registered_name: str = ""
    version: str = ""
    alias: str = ""
    run_id: str = ""
    artifact_path: str = ""  # the model's path inside its run (runs:/ URIs)

    @property
    def pinned(self) -> str:
        """The URI of exactly this version, whatever the alias does next."""
        if self.registered_name:
            return f"models:/{self.registered_name}/{self.version}"
        return self.uri

    @property
    def profile_artifact(self) -> str:
        """Where in its run the reference profile is logged."""
        if self.registered_name:
            return f"modelmon/models/{self.registered_name}/{self.version}"
        return f"modelmon/runs/{self.artifact_path}"

    @property
    def label_version(self) -> str:
        """The `version` label: the registry's version, else (runs:/ URIs) the run's id."""
        return self.version or self.run_id[:12]


def is_model_uri(text: str | os.PathLike[str]) -> bool:
    """Whether `--model` names an MLflow model URI rather than a local folder."""
    return isinstance(text, str) and text.split(":", 1)[0] in _SCHEMES and ":/" in text


def read_origin(folder: Path) -> Origin | None:
    """The origin a fetched folder keeps (None for a plain local folder)."""
    path = folder / ORIGIN_FILE
    if not path.is_file():
        return None
    return Origin(**json.loads(path.read_text()))


def default_cache() -> Path:
    """`$MODELMON_MODEL_CACHE`, else `$XDG_CACHE_HOME/modelmon/models` (~/.cache/...)."""
    configured = os.environ.get("MODELMON_MODEL_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelmon" / "models"


def tracking_uri() -> str:
    import mlflow

    return str(mlflow.get_tracking_uri())


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    _check_reachable(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _check_reachable(uri: str) -> None:
    """MLflow's client retries an unreachable server for minutes; ask once, briefly, first."""
    if not uri.startswith(("http://", "https://")):
        return
    import httpx

    try:
        httpx.get(uri.rstrip("/") + "/health", timeout=5.0)
    except httpx.HTTPError as exc:
        raise ModelSourceError(
            f"No MLflow tracking server answers at {uri} ({type(exc).__name__}): start it, or set "
            "MLFLOW_TRACKING_URI to the one that holds the model.") from None


@contextlib.contextmanager
def _explained(uri: str, tracking: str) -> Iterator[None]:
    """An MLflow error as one sentence naming the URI and the server it was tried against."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        first = str(exc.message).strip().splitlines()[0] if str(exc.message).strip() else type(exc).__name__
        raise ModelSourceError(f"Could not resolve {uri} against the tracking server {tracking} "
                               f"(MLFLOW_TRACKING_URI): {first}") from None


def locate(uri: str, tracking: str | None = None) -> Origin:
    """Resolve a model URI to one version (an alias to the version it names now)."""
    tracking = tracking or tracking_uri()
    models, runs = _MODELS.match(uri), _RUNS.match(uri)
    if models is None and runs is None:
        raise ModelSourceError(f"{uri!r} is not a model URI modelmon reads: use models:/NAME/VERSION, "
                               "models:/NAME@ALIAS or runs:/RUN_ID/PATH (or a local folder).")
    client = _client(tracking)
    with _explained(uri, tracking):
        if runs is not None:
            client.get_run(runs["run"])
            return Origin(uri, tracking, run_id=runs["run"], artifact_path=runs["path"])
        assert models is not None
        name, alias = models["name"], models["alias"] or ""
        version = (client.get_model_version_by_alias(name, alias) if alias
                   else client.get_model_version(name, models["version"]))
        return Origin(uri, tracking, registered_name=name, version=str(version.version), alias=alias,
                      run_id=version.run_id or "")


def alias_version(origin: Origin) -> str:
    """The version the followed alias names now."""
    client = _client(origin.tracking_uri)
    with _explained(origin.uri, origin.tracking_uri):
        return str(client.get_model_version_by_alias(origin.registered_name, origin.alias).version)


def cache_folder(origin: Origin, cache: Path) -> Path:
    """One folder per tracking server and version (or run and path): downloaded once."""
    server = hashlib.sha256(origin.tracking_uri.encode()).hexdigest()[:10]
    if origin.registered_name:
        return cache / server / "models" / origin.registered_name / origin.version
    return cache / server / "runs" / origin.run_id / origin.artifact_path


def fetch(origin: Origin, cache: Path | None = None) -> Path:
    """The local folder of `origin`'s model, downloaded on first use, with its profile (the
    one logged to its run, else one that came inside the model) and `ORIGIN_FILE`."""
    folder = cache_folder(origin, cache or default_cache())
    if not (folder / ORIGIN_FILE).is_file():
        import mlflow.artifacts

        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
        try:
            with _explained(origin.uri, origin.tracking_uri):
                got = Path(mlflow.artifacts.download_artifacts(artifact_uri=origin.pinned, dst_path=str(staging),
                                                               tracking_uri=origin.tracking_uri))
            if not (got / "MLmodel").is_file():
                raise ModelSourceError(f"{origin.uri} holds no MLflow model (no MLmodel file in what "
                                       f"{origin.tracking_uri} returned): point at the model's own folder.")
            _write_origin(got, origin)
            try:
                got.rename(folder)  # atomic: replicas fetching at once keep one complete copy
            except OSError:
                if not (folder / ORIGIN_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    elif origin.alias and read_origin(folder) != origin:
        _write_origin(folder, origin)  # the same version, reached through another alias or URI
    _fetch_profile(origin, folder)
    return folder


def _write_origin(folder: Path, origin: Origin) -> None:
    temporary = folder / (ORIGIN_FILE + ".tmp")
    temporary.write_text(json.dumps(asdict(origin), indent=1))
    temporary.replace(folder / ORIGIN_FILE)


def _fetch_profile(origin: Origin, folder: Path) -> None:
    """The profile logged to the run replaces a copy that came with the model (it is newer)."""
    if not origin.run_id:
        return
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        try:
            got = mlflow.artifacts.download_artifacts(
                run_id=origin.run_id, artifact_path=f"{origin.profile_artifact}/{PROFILE_FILE}", dst_path=scratch,
                tracking_uri=origin.tracking_uri)
        except (MlflowException, OSError):
            return  # none logged yet: `modelmon profile --model URI` logs one
        Path(got).replace(folder / PROFILE_FILE)


def log_profile(origin: Origin, profile_file: Path) -> str:
    """Log a reference profile as an artifact of the version's run; returns where."""
    if not origin.run_id:
        raise ModelSourceError(
            f"{origin.uri} was registered without a run, so there is nowhere to log its profile: register it "
            "from a run (mlflow.<flavor>.log_model inside mlflow.start_run), or pass --out to keep it locally.")
    client = _client(origin.tracking_uri)
    with _explained(origin.uri, origin.tracking_uri), tempfile.TemporaryDirectory() as scratch:
        named = Path(scratch) / PROFILE_FILE
        shutil.copyfile(profile_file, named)
        client.log_artifact(origin.run_id, str(named), origin.profile_artifact)
    return f"runs:/{origin.run_id}/{origin.profile_artifact}/{PROFILE_FILE}"


def located(model: str | os.PathLike[str], cache: Path | None = None) -> tuple[Path, Origin | None]:
    """The local folder for `--model` (itself, or the fetched copy of a model URI) and, for a
    URI, what it resolved to."""
    if not is_model_uri(model):
        return Path(model), None
    origin = locate(str(model))
    return fetch(origin, cache), origin


def resolve(model: str | os.PathLike[str], cache: Path | None = None) -> Path:
    """A local folder for `--model`: itself, or the fetched copy of a model URI."""
    return located(model, cache)[0]


def at_version(origin: Origin, version: str) -> Origin:
    """The same alias, pointing at another version."""
    return replace(origin, version=version)

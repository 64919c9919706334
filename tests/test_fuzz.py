"""Schemathesis against the server's own OpenAPI schema: no 5xx, every answer documented.

Seeded (derandomized) and bounded so it runs the same in CI every time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from modelmon.model.loading import load_model
from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.serving.app import create_app
from modelmon.settings import Settings

from .conftest import STORES_DIR, build_iris
from .kinds import build_categorical, build_regressor

# 413 (batch or body over the limit) is a documented, deliberate answer to invalid input.
CONFIG = SchemathesisConfig.from_dict({
    "checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 422]}},
})
FUZZ = settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


def _app(model_dir):
    model = load_model(model_dir)
    log = Path(tempfile.mkdtemp(prefix="modelmon-fuzz-")) / "predictions.sqlite"  # /feedback fuzzed for real
    return create_app(model, ReferenceProfile.load(profile_path(model_dir)),
                      Settings(max_batch_rows=50, prediction_log=str(log)))


stores = schemathesis.openapi.from_asgi("/openapi.json", _app(STORES_DIR), config=CONFIG)


@stores.parametrize()
@FUZZ
def test_stores_api_conforms_to_its_schema(case):
    case.call_and_validate()


iris = schemathesis.openapi.from_asgi(
    "/openapi.json", _app(build_iris(Path(tempfile.mkdtemp(prefix="modelmon-iris-"))) / "model"), config=CONFIG)


@iris.parametrize()
@FUZZ
def test_iris_api_conforms_to_its_schema(case):
    case.call_and_validate()


payments = schemathesis.openapi.from_asgi(
    "/openapi.json", _app(build_categorical(Path(tempfile.mkdtemp(prefix="modelmon-payments-")))), config=CONFIG)


@payments.parametrize()
@FUZZ
def test_categorical_api_conforms_to_its_schema(case):
    """A string input, a nullable one: unseen categories and nulls are served, wrong types are 422."""
    case.call_and_validate()


houses = schemathesis.openapi.from_asgi(
    "/openapi.json", _app(build_regressor(Path(tempfile.mkdtemp(prefix="modelmon-houses-")))), config=CONFIG)


@houses.parametrize()
@FUZZ
def test_regressor_api_conforms_to_its_schema(case):
    """Numeric predictions, numeric ground truth on /feedback."""
    case.call_and_validate()


def _collector():
    from modelmon.monitoring.monitor import Monitor
    from modelmon.serving.collector import create_collector

    log = Path(tempfile.mkdtemp(prefix="modelmon-collector-")) / "predictions.sqlite"
    # Halves wait an hour: which examples join must not depend on how long the run takes (a
    # slow machine would otherwise expire halves that a fast one joins, and fuzz other paths).
    settings = Settings(max_batch_rows=50, prediction_log=str(log), collector_wait_seconds=3600)
    return create_collector(Monitor.from_model_dir(STORES_DIR), settings)


# What JSON Schema cannot say - one prediction per row; a request half and a response half that
# join into rows and answers - is refused with a 4xx that a schema-valid example can meet: the
# collector is held to no 5xx, documented statuses and bodies, and refusing invalid data.
COLLECTOR_CONFIG = SchemathesisConfig.from_dict({
    "checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 422]},
               "positive_data_acceptance": {"enabled": False}},
})
collector = schemathesis.openapi.from_asgi("/openapi.json", _collector(), config=COLLECTOR_CONFIG)


@collector.parametrize()
@FUZZ
def test_collector_api_conforms_to_its_schema(case):
    case.call_and_validate()

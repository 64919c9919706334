import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from modelmon.monitoring.metrics import observe_many


@pytest.mark.parametrize("values", [[0.5], [1, 2, 3, 2.5, 10, -3, 1.0000001, 4], list(np.linspace(-1, 12, 500))])
def test_observe_many_equals_observe_one_by_one(values):
    buckets = (1.0, 2.0, 2.5, 4.0, 8.0)
    registry = CollectorRegistry()
    one = Histogram("one", "d", ["k"], buckets=buckets, registry=registry).labels("a")
    many = Histogram("many", "d", ["k"], buckets=buckets, registry=registry).labels("a")
    for v in values:
        one.observe(v)
    observe_many(many, np.asarray(values, dtype=float))

    def samples(name):
        family = next(m for m in registry.collect() if m.name == name)
        return {(s.name.removeprefix(name), s.labels.get("le")): s.value for s in family.samples
                if not s.name.endswith("_created")}

    one_samples, many_samples = samples("one"), samples("many")
    sums = one_samples.pop(("_sum", None)), many_samples.pop(("_sum", None))
    assert many_samples == one_samples  # every bucket and the count, exactly
    assert sums[1] == pytest.approx(sums[0], rel=1e-12)


def test_extreme_finite_inputs_never_make_an_exported_value_infinite(iris_model):
    """1e308 is a valid float; two of them would overflow a histogram's _sum (RELIABILITY.md)."""
    import math

    from prometheus_client.parser import text_string_to_metric_families

    from .conftest import make_client

    client = make_client(iris_model)
    names = [f.name for f in iris_model.features]
    for value in (1e308, 1e308, -1e308, -1e308, 1.7976931348623157e308):
        assert client.post("/predict", json={n: value for n in names}).status_code == 200
    samples = [s for f in text_string_to_metric_families(client.get("/metrics").text) for s in f.samples]
    assert samples and all(math.isfinite(s.value) for s in samples)
    counts = {s.labels["feature"]: s.value for s in samples if s.name == "modelmon_feature_value_count"}
    assert set(counts.values()) == {5.0}  # every value still counted

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from modelmon.metrics import observe_many


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

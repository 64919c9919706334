import asyncio

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from modelmon.model.reference import ReferenceProfile, profile_path
from modelmon.serving.app import create_app
from modelmon.serving.batching import MicroBatcher


def test_concurrent_requests_share_one_call_and_get_their_own_rows():
    calls = []

    def predict(columns, requests):
        calls.append((len(columns["x"]), requests))
        return [{"y": v * 10} for v in columns["x"]]

    batcher = MicroBatcher(predict, max_rows=100)

    async def main():
        return await asyncio.gather(*(batcher({"x": [i, i + 0.5]}) for i in range(5)))

    answers = asyncio.run(main())
    assert calls == [(10, 5)]
    assert answers[3] == [{"y": 30}, {"y": 35}]


def test_a_full_batch_is_flushed_at_once_and_big_requests_go_alone():
    calls = []
    batcher = MicroBatcher(lambda c, r: calls.append(len(c["x"])) or [{}] * len(c["x"]), max_rows=4)

    async def main():
        await asyncio.gather(*(batcher({"x": [i]}) for i in range(6)), batcher({"x": list(range(9))}))

    asyncio.run(main())
    assert sorted(calls) == [2, 4, 9]


def test_a_model_failure_reaches_every_request_of_the_batch():
    def predict(columns, requests):
        raise ValueError("broken model")

    batcher = MicroBatcher(predict)

    async def main():
        return await asyncio.gather(*(batcher({"x": [1]}) for _ in range(3)), return_exceptions=True)

    assert all(isinstance(r, ValueError) for r in asyncio.run(main()))


def test_batched_answers_equal_pyfunc_and_batch_sizes_are_exported(stores_model):
    app = create_app(stores_model, ReferenceProfile.load(profile_path(stores_model.path)))
    rng = np.random.default_rng(1)
    rows = [{"items_count": int(a), "customers_count": int(b)}
            for a, b in zip(rng.integers(0, 3000, 64), rng.integers(0, 2000, 64))]

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            answers = await asyncio.gather(*(client.post("/predict", json=r) for r in rows))
            return [a.json() for a in answers], (await client.get("/metrics")).text

    answers, text = asyncio.run(main())
    import pandas as pd

    expected = stores_model.pyfunc.predict(pd.DataFrame(rows))
    assert [a["prediction"] for a in answers] == list(expected)
    samples = {(s.name, s.labels.get("le")): s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name.startswith("modelmon_batch_rows") or s.name.startswith("modelmon_model_predict_seconds_count")}
    assert samples[("modelmon_batch_rows_sum", None)] == 64
    assert samples[("modelmon_batch_rows_count", None)] < 64, "no two requests shared a model call"
    assert samples[("modelmon_model_predict_seconds_count", None)] == 64  # still one per request

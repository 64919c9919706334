"""What `Monitor.observe` costs a team's own app per row, beside the model call it monitors,
and what the collector spends per logged inference.

    .venv/bin/python benchmarks/library.py

In one process, on the stores model: the native scikit-learn `predict` + `predict_proba` of
the same rows (the call the app makes anyway) and `Monitor.observe` of its answers, for one
row at a time (a dict) and for batches (a list of dicts, a DataFrame). Then the collector's
work for one KServe inference (two CloudEvents: parsed, joined, read, observed), without the
HTTP server around it. Medians of several rounds; the ratio is observe's time over the model
call's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from modelmon import Monitor


def _median_seconds(run: Callable[[], object], rounds: int, repeat: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            run()
        times.append((time.perf_counter() - start) / repeat)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/stores"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import mlflow.sklearn

    model = mlflow.sklearn.load_model(str(args.model))
    monitor = Monitor.from_model_dir(args.model)
    rng = np.random.default_rng(0)
    print(f"{'rows per call':<16}{'inputs as':<14}{'model call µs/row':>18}{'observe µs/row':>16}{'observe/model':>15}")
    for rows, shape in ((1, "dict"), (100, "list of dicts"), (1000, "list of dicts"), (1000, "DataFrame")):
        frame = pd.DataFrame({"items_count": rng.normal(1782, 300, rows).round().astype(int),
                              "customers_count": rng.normal(786, 265, rows).clip(0).round().astype(int)})
        records = frame.to_dict("records")
        inputs = records[0] if shape == "dict" else records if shape == "list of dicts" else frame
        prediction, probabilities = model.predict(frame), model.predict_proba(frame)
        repeat = max(1, 2000 // rows)
        def model_call(frame: pd.DataFrame = frame) -> object:
            return model.predict(frame), model.predict_proba(frame)

        def observe_call(inputs: object = inputs, prediction: object = prediction,
                         probabilities: object = probabilities) -> object:
            return monitor.observe(inputs, prediction, probabilities)

        call = _median_seconds(model_call, args.rounds, repeat)
        observe = _median_seconds(observe_call, args.rounds, repeat)
        print(f"{rows:<16}{shape:<14}{call / rows * 1e6:>18.1f}{observe / rows * 1e6:>16.1f}{observe / call:>15.2f}")

    from modelmon.serving.collector import Joiner, event_from_http, response_answers
    from modelmon.serving.scoring import request_rows

    names = [f.name for f in monitor.features]
    joiner = Joiner(lambda half, outcome: None)
    request, response = b'{"instances": [[1800, 900]]}', b'{"predictions": [1]}'
    counter = iter(range(10**9))

    def collected() -> object:
        event_id = str(next(counter))
        for body, kind in ((request, "request"), (response, "response")):
            headers = {"ce-id": event_id, "ce-type": f"org.kubeflow.serving.inference.{kind}",
                       "content-type": "application/json"}
            pair = joiner.add(event_from_http(headers, body))
        assert pair is not None
        rows = request_rows(pair[0], names)
        answers, probabilities = response_answers(pair[1], monitor.classes)
        return monitor.observe(rows, answers, probabilities)

    per_inference = _median_seconds(collected, args.rounds, 2000)
    print(f"\ncollector, one KServe inference of one row (two events, without HTTP): {per_inference * 1e6:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Replay KServe payload-logger events into `modelmon collect`.

KServe's logger posts each inference as two CloudEvents (binary mode: `ce-*` headers, the
request or response body as data) to one URL. This replays a file of such events, one JSON
object per line (`{"headers": {...}, "body": ...}`), in order:

    .venv/bin/modelmon collect --model models/stores --port 8000 &
    .venv/bin/python examples/kserve_replay.py examples/kserve-events.jsonl --url http://127.0.0.1:8000

`examples/kserve-events.jsonl` holds the workshop's story as KServe would log it for the
stores model: 300 inferences of normal traffic, then 300 with the faulty items
(N(300, 100)); `--record FILE` writes such a file again (`--rows`, `--seed`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


def headers(event_id: str, event_type: str) -> dict[str, str]:
    """The attributes KServe's logger sets on each event (as `ce-*` headers in binary mode)."""
    return {
        "ce-id": event_id, "ce-specversion": "1.0", "ce-type": event_type,
        "ce-source": "http://localhost:9081/", "ce-time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ce-inferenceservicename": "stores", "ce-namespace": "models", "ce-component": "predictor",
        "ce-endpoint": "default", "ce-metadata": "{}", "content-type": "application/json",
    }


def events(rows: list[list[float]], answers: list[Any], event_id: str | None = None) -> list[dict[str, Any]]:
    """One inference as KServe logs it: the v1 request and its response, sharing one id."""
    event_id = event_id or str(uuid.uuid4())
    return [{"headers": headers(event_id, REQUEST_TYPE), "body": {"instances": rows}},
            {"headers": headers(event_id, RESPONSE_TYPE), "body": {"predictions": answers}}]


def record(path: Path, model_dir: Path, rows: int, seed: int) -> None:
    """The workshop's normal then faulty traffic, one row per inference, answered by the model."""
    import mlflow.sklearn
    import pandas as pd

    model = mlflow.sklearn.load_model(str(model_dir))
    rng = np.random.default_rng(seed)
    items = np.concatenate([rng.normal(1782, 300, rows), rng.normal(300, 100, rows)]).round().clip(0)
    customers = rng.normal(786, 265, 2 * rows).round().clip(0)
    frame = pd.DataFrame({"items_count": items.astype(int), "customers_count": customers.astype(int)})
    answers = model.predict(frame).tolist()
    with path.open("w") as out:
        for i, (row, answer) in enumerate(zip(frame.to_numpy().tolist(), answers)):
            for event in events([row], [answer], event_id=f"{seed}-{i}"):
                out.write(json.dumps(event) + "\n")


def replay(path: Path, url: str, rate: float = 0.0) -> int:
    """Post every event of `path` to `url` (at most `rate` per second; 0: as fast as it goes)."""
    sent = 0
    with httpx.Client(timeout=10) as client:
        for line in path.read_text().splitlines():
            event = json.loads(line)
            response = client.post(url, content=json.dumps(event["body"]), headers=event["headers"])
            if response.status_code >= 400:
                raise SystemExit(f"the collector refused an event: {response.status_code} {response.text}")
            sent += 1
            if rate:
                time.sleep(1 / rate)
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", type=Path, help="JSON-lines file of events")
    parser.add_argument("--url", default="http://127.0.0.1:8000/", help="the collector (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second at most (default: no limit)")
    parser.add_argument("--record", action="store_true", help="write the events file instead of replaying it")
    parser.add_argument("--model", type=Path, default=Path("models/stores"))
    parser.add_argument("--rows", type=int, default=300, help="inferences per phase when recording")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.record:
        record(args.events, args.model, args.rows, args.seed)
        return 0
    print(f"replayed {replay(args.events, args.url, args.rate)} events to {args.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

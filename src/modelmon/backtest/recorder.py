"""The scrape recorder: the samples the rules read, kept at each simulated scrape's timestamp
and written as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from modelmon.model.loading import LoadedModel
from modelmon.rules.series import JOB

# The simulated clock starts here (a fixed instant, so runs are reproducible to the sample).


EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


_BLOCK = 7200.0  # promtool's block length: its backfill aligns blocks to multiples of two hours


_GAUGE_HEARTBEAT = 60.0  # a gauge that does not change is written this often (lookback is 5 m)


NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def clock_at(t: float) -> str:
    days, rest = divmod(round(t), 86_400)
    text = time.strftime("%H:%M:%S", time.gmtime(rest))
    return f"day {days + 1} {text}" if days else text


class Scrapes:
    """The samples the rules read, per series, at each scrape; written as OpenMetrics."""

    def __init__(self, keep: set[str]) -> None:
        self.keep = keep
        self.types: dict[str, str] = {}  # family -> type
        self.series: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[array[float], array[float]]] = {}
        self._last: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[float, float]] = {}

    def scrape(self, registry: Any, t: float) -> None:
        for family in registry.collect():
            for sample in family.samples:
                if sample.name not in self.keep or sample.name.endswith("_created"):
                    continue
                self.types[family.name] = family.type
                labels = tuple(sorted({**sample.labels, "job": JOB}.items()))
                key = (family.name, sample.name, labels)
                if family.type == "gauge":
                    last = self._last.get(key)
                    if last is not None and last[1] == sample.value and t - last[0] < _GAUGE_HEARTBEAT:
                        continue
                    self._last[key] = (t, sample.value)
                times, values = self.series.setdefault(key, (array("d"), array("d")))
                times.append(t)
                values.append(float(sample.value))

    def write(self, folder: Path) -> list[Path]:
        """OpenMetrics, one file per two-hour block (promtool reads its whole input once per
        block it writes, so one file for days would be read dozens of times); in each, each
        family's series together, each series in time order."""
        if not self.series:
            return []
        times = [t for ts, _ in self.series.values() for t in (ts[0], ts[-1])]
        first, last = int(min(times) // _BLOCK), int(max(times) // _BLOCK)
        files = []
        for block in range(first, last + 1):
            low, high = block * _BLOCK, (block + 1) * _BLOCK
            path = folder / f"scrapes-{block}.om"
            with path.open("w") as out:
                for family in sorted(self.types):
                    out.write(f"# TYPE {family} {self.types[family]}\n")
                    for (fam, name, labels), (ts, values) in sorted(self.series.items()):
                        if fam != family:
                            continue
                        a, b = bisect.bisect_left(ts, low), bisect.bisect_left(ts, high)
                        head = name + "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"
                        out.writelines(f"{head} {v!r} {t:.3f}\n" for t, v in zip(ts[a:b], values[a:b], strict=True))
                out.write("# EOF\n")
            files.append(path)
        return files


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def typed_samples(model: LoadedModel, name: str, values: np.ndarray) -> np.ndarray:
    """A column as the simulator sends it: integers rounded and clipped to the declared bounds."""
    feature = next(f for f in model.features if f.name == name)
    if values.dtype != object and feature.numeric:
        if feature.minimum is not None or feature.maximum is not None:
            values = np.clip(values, feature.minimum, feature.maximum)
        if feature.kind == "integer":
            values = np.rint(values)
    return values


def json_of(values: np.ndarray) -> list[Any]:
    """A column as request rows carry it: missing values as None."""
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values.tolist()]

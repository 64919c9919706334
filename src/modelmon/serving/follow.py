"""Following a Model Registry alias: when `models:/name@alias` moves, serve the new version.

Why a thread that loads and an assignment that switches: loading a version (download,
unpickling, the probe predictions that pick the fast path, its profile) takes seconds and must
never stall answers, so it happens beside the version serving; the switch is one reference
assignment that each request reads once at its start, so a request is answered, observed and
logged by one version from start to end, and none meets a half-loaded model. A version that
fails to load is counted (`modelmon_model_reloads_total{result="failed"}`) and not tried again
until the alias moves once more; the old version keeps serving.

Why each version has its own metrics registry: its profile sets bucket bounds and reference
shares that prometheus_client fixes when a metric is created. At a switch the new version's
input series start from zero, as after a restart (rate() and increase() read a counter reset);
what the versions counted of their predictions and quality carries a `version` label, so
`ServedVersions` keeps exporting the retired versions' series beside the new one's.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from modelmon.contract import names as N
from modelmon.errors import ModelmonError
from modelmon.model.source import Origin, alias_version, at_version

T = TypeVar("T")

# Families whose series carry the version that counted them: a retired version's stay exported.
PER_VERSION = frozenset(f.name for f in N.FAMILIES if N.VERSION in f.labels)


class ServedVersions(Collector):
    """The serving version's registry in full, plus the per-version series of those before it."""

    def __init__(self, current: CollectorRegistry) -> None:
        self.current = current
        self.retired: list[CollectorRegistry] = []

    def switch(self, registry: CollectorRegistry) -> None:
        self.retired.append(self.current)
        self.current = registry

    def collect(self) -> Iterable[Metric]:
        families = list(self.current.collect())
        by_name = {family.name: family for family in families}
        for old in self.retired:
            for family in old.collect():
                if family.name in PER_VERSION and family.name in by_name:
                    by_name[family.name].samples.extend(family.samples)
        return families


class AliasFollower(Generic[T]):
    """Polls the alias every `every` seconds; `load(origin)` builds what serves a version (in
    this thread), `switch(built)` puts it in place, `counted(result)` counts the outcome."""

    def __init__(self, origin: Origin, every: float, load: Callable[[Origin], T], switch: Callable[[T], None],
                 counted: Callable[[str], None]) -> None:
        if not origin.alias:
            raise ModelmonError(f"--follow-alias needs a model URI with an alias (models:/NAME@ALIAS), not {origin.uri}.")
        self.origin = origin
        self.every = every
        self._load, self._switch, self._counted = load, switch, counted
        self._failed = ""  # a version that would not load: not tried again until the alias moves
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelmon-follow-alias", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.check()

    def check(self) -> str | None:
        """One poll: the version switched to, or None (unchanged, unreachable, or failed)."""
        try:
            version = alias_version(self.origin)
        except ModelmonError as exc:
            _say(f"could not ask where {self.origin.uri} points ({exc}); still serving version {self.origin.version}")
            return None
        if version in (self.origin.version, self._failed):
            return None
        target = at_version(self.origin, version)
        try:
            built = self._load(target)
        except Exception as exc:  # whatever the new version does wrong, the old one keeps serving
            self._failed = version
            self._counted("failed")
            _say(f"{self.origin.uri} moved to version {version}, which could not be loaded "
                 f"({type(exc).__name__}: {exc}); still serving version {self.origin.version}")
            return None
        self._switch(built)
        self._counted("switched")
        _say(f"{self.origin.uri} moved from version {self.origin.version} to {version}: now serving {version}")
        self.origin = target
        self._failed = ""
        return version


def _say(message: str) -> None:
    print(f"modelmon: {message}", file=sys.stderr, flush=True)

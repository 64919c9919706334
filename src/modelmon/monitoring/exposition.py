"""What a scrape of /metrics shows, in the format the scraper asks for.

One registry for every place that serves metrics (the app's /metrics, the separate metrics
port, gunicorn's master in multiprocess mode): this process's metrics, or every worker's
files summed, without the `_created` series (they double the series count and no rule or
panel reads them; dropping them here leaves prometheus_client's process-wide setting alone).
The format is negotiated from `Accept` as prometheus_client's own handlers do: OpenMetrics
for a scraper that asks for it (Prometheus does by default), the text format otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from modelmon.settings import MULTIPROC_ENV

_WITH_CREATED = frozenset({"counter", "histogram", "summary", "gaugehistogram"})


class _Exported(Collector):
    """The source's metrics, less their `_created` samples."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        for metric in self._source.collect():
            if metric.type not in _WITH_CREATED:
                yield metric
                continue
            created = metric.name + "_created"
            out = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            out.samples = [s for s in metric.samples if s.name != created]
            yield out


def exposition_registry(registry: CollectorRegistry) -> CollectorRegistry:
    """What /metrics shows: `registry`, or every worker's files in multiprocess mode."""
    source = registry
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        source = CollectorRegistry()
        multiprocess.MultiProcessCollector(source)
    out = CollectorRegistry(auto_describe=False)
    out.register(_Exported(source))
    return out


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The body and content type for a scraper that sent `Accept: accept`."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[Request], Awaitable[Response]]:
    """The one /metrics handler of a Starlette or FastAPI app (the server's, the collector's and
    `Monitor.instrument`'s): `registry` as `exposition_registry` exports it, in the format the
    scraper asks for."""
    exported = exposition_registry(registry)

    async def metrics(request: Request) -> Response:
        body, content_type = render(exported, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    return metrics


def serve_metrics_port(registry: CollectorRegistry, host: str, port: int) -> None:
    """/metrics on a port of its own, in a background thread (prometheus_client's server,
    which negotiates the format the same way)."""
    start_http_server(port, addr=host, registry=exposition_registry(registry))

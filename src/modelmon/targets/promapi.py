"""One client of Prometheus' HTTP API, for everything that reads a running Prometheus back: the
report, the backtest's engine and the demo's alert timeline.

Each answer is checked the same way: a transport error, a body that is not JSON, or a status
other than `success` raises `PrometheusAPIError`, whose message names the server and what it
said; each caller adds what the user should do.

May import: `modelmon.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from modelmon.errors import ModelmonError

__all__ = ["PrometheusAPI", "PrometheusAPIError"]


class PrometheusAPIError(ModelmonError):
    """Prometheus could not be reached (`cause`: the error's type), or refused the request
    (`refused`; the message is Prometheus' own)."""

    def __init__(self, message: str, refused: bool, cause: str = "") -> None:
        super().__init__(message)
        self.refused = refused
        self.cause = cause


class PrometheusAPI:
    """Prometheus at `url`; `timeout`: seconds per request."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _data(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError as exc:
            raise PrometheusAPIError(f"Prometheus at {self.url} answered {response.status_code} without JSON",
                                     refused=False, cause=type(exc).__name__) from None
        if body.get("status") != "success":
            raise PrometheusAPIError(f"{body.get('error', body)}", refused=True)
        return body["data"]

    def _answer(self, send: Callable[[], httpx.Response]) -> Any:
        try:
            response = send()
        except httpx.HTTPError as exc:
            raise PrometheusAPIError(f"Prometheus at {self.url} did not answer ({type(exc).__name__})",
                                     refused=False, cause=type(exc).__name__) from None
        return self._data(response)

    def get(self, path: str, params: dict[str, Any]) -> Any:
        """The `data` of a GET of `path` (e.g. /api/v1/query)."""
        return self._answer(lambda: httpx.get(f"{self.url}{path}", params=params, timeout=self.timeout))

    def post(self, path: str, form: dict[str, str], client: httpx.Client | None = None) -> Any:
        """The `data` of a form POST of `path` (long queries), on `client` if given."""
        return self._answer(lambda: (client or httpx).post(f"{self.url}{path}", data=form, timeout=self.timeout))

    def query(self, expr: str, at: float | str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", {"query": expr, "time": at})["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query_range",
                                                {"query": expr, "start": start, "end": end, "step": step})["result"]
        return result

    def rule_groups(self, kind: str) -> list[dict[str, Any]]:
        """The rule groups Prometheus runs, of `kind` (record or alert)."""
        groups: list[dict[str, Any]] = self.get("/api/v1/rules", {"type": kind})["groups"]
        return groups

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts pending or firing now."""
        alerts: list[dict[str, Any]] = self.get("/api/v1/alerts", {})["alerts"]
        return alerts

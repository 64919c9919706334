"""Adaptive micro-batching: concurrent requests share one predict call.

A model call costs nearly the same for one row as for sixteen, so under load the rows of
requests that arrive together are predicted together and the answers split back. Nothing
waits when the server is idle: by default a batch closes at the end of the current event-loop
turn, i.e. it holds exactly the requests that were already waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

Columns = dict[str, list[Any]]


class Sliceable(Protocol):
    """Answers for rows, of which each request gets its own share: a list, or columns."""

    def __len__(self) -> int: ...
    def __getitem__(self, part: slice, /) -> Any: ...


A = TypeVar("A", bound=Sliceable)


class MicroBatcher(Generic[A]):
    def __init__(self, predict: Callable[[Columns, int], A], max_rows: int = 256, max_wait: float = 0.0) -> None:
        self._predict = predict  # (merged columns, number of requests) -> answers, one per row
        self.max_rows = max_rows
        self.max_wait = max_wait
        self._pending: list[tuple[Columns, int, asyncio.Future[A]]] = []
        self._rows = 0
        self._timer: asyncio.Handle | asyncio.TimerHandle | None = None

    async def __call__(self, columns: Columns) -> A:
        rows = len(next(iter(columns.values())))
        if rows >= self.max_rows:
            return self._predict(columns, 1)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[A] = loop.create_future()
        self._pending.append((columns, rows, future))
        self._rows += rows
        if self._rows >= self.max_rows:
            self._flush()
        elif self._timer is None:
            self._timer = (loop.call_later(self.max_wait, self._flush) if self.max_wait > 0
                           else loop.call_soon(self._flush))
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending, self._rows = self._pending, [], 0
        if not batch:
            return
        names = batch[0][0].keys()
        merged = {name: [v for columns, _, _ in batch for v in columns[name]] for name in names}
        try:
            answers = self._predict(merged, len(batch))
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for _, rows, future in batch:
            if not future.done():
                future.set_result(answers[start:start + rows] if len(batch) > 1 else answers)
            start += rows

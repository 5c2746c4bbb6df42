"""Group commit: requests that arrive together are written together, each still answered alone.

Under concurrent load most of what one small write costs is per transaction, not per row: the
round trips, the locks, the commit's flush to disk, and (in Python) SQLAlchemy's work per
statement. ``Batcher`` lets many coroutines hand items to one writer thread, which takes
whatever is waiting (up to ``max_batch``) and passes it to ``handle`` at once; each caller then
gets its own result or exception back. Nothing waits on purpose: a lone request is written at once
as a batch of one, and batches grow only while the writer is busy, which is exactly when sharing
pays. The same technique is PostgreSQL's ``commit_delay`` and a Kafka producer's batching.

``handle`` decides what a batch means (one transaction, and what to do when it fails); it must
return one result per item, in order, where a result may be an exception meant for that item's
caller alone. The thread exits after ``idle_s`` without work and is started again by the next
item, so an app that stops receiving requests (or a test that drops its app) leaves no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class _Waiting(Generic[T, R]):
    item: T
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[R]


def _settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.cancelled():  # the caller went away (client disconnected); the write stands
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class Batcher(Generic[T, R]):
    """One writer thread that runs ``handle`` on everything submitted while it was busy."""

    def __init__(
        self,
        handle: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        name: str,
        max_batch: int = 256,
        idle_s: float = 10.0,
    ) -> None:
        self._handle = handle
        self._name = name
        self._max_batch = max_batch
        self._idle_s = idle_s
        self._queue: queue.SimpleQueue[_Waiting[T, R]] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._running = False
        self.batches = 0  # how many batches ran (for tests and the curious)
        self.items = 0

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its result (or its exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._guard:
            self._queue.put(_Waiting(item, loop, future))
            if not self._running:
                self._running = True
                threading.Thread(target=self._work, name=self._name, daemon=True).start()
        return await future

    def _next_batch(self) -> list[_Waiting[T, R]] | None:
        """Block for the first item, then take what else is already waiting; None when idle."""
        try:
            first = self._queue.get(timeout=self._idle_s)
        except queue.Empty:
            with self._guard:
                if self._queue.empty():
                    self._running = False
                    return None
            return []
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if not batch:
                continue
            outcomes: Sequence[R | BaseException]
            try:
                outcomes = self._handle([waiting.item for waiting in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"{self._name}: {len(outcomes)} results for {len(batch)} items")
            except BaseException as error:
                outcomes = [error] * len(batch)
            self.batches += 1
            self.items += len(batch)
            for waiting, outcome in zip(batch, outcomes, strict=True):
                # A caller whose event loop has closed is not listening any more.
                with contextlib.suppress(RuntimeError):
                    waiting.loop.call_soon_threadsafe(_settle, waiting.future, outcome)

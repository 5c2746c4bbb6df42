"""Group commit (``kit.batching.Batcher``) and how the order intake splits a batch into rounds."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from memberops.ingest.intake import OrderSubmission, rounds
from memberops.ingest.records import OrderIn
from memberops.kit.batching import Batcher


class Gate:
    """A handler that records its batches and holds the first one until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.entered.set()
        self.release.wait(5)
        return [ValueError(f"odd {item}") if item % 2 else item * 10 for item in items]


def test_items_that_wait_while_a_batch_runs_go_together_into_the_next() -> None:
    gate = Gate()
    batcher: Batcher[int, int] = Batcher(gate, name="test", max_batch=3)

    async def scenario() -> list[int | BaseException]:
        first = asyncio.ensure_future(batcher.submit(2))
        await asyncio.to_thread(gate.entered.wait, 5)
        rest = [asyncio.ensure_future(batcher.submit(n)) for n in (4, 5, 6, 8)]
        await asyncio.sleep(0.05)  # all four are queued before the first batch ends
        gate.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(scenario())
    assert gate.batches == [[2], [4, 5, 6], [8]]  # max_batch caps the second batch
    assert [r if isinstance(r, int) else str(r) for r in results] == [20, 40, "odd 5", 60, 80]
    assert (batcher.batches, batcher.items) == (3, 5)


def test_a_handler_that_fails_fails_every_caller_of_that_batch_and_the_next_batch_runs() -> None:
    calls: list[list[str]] = []

    def handle(items: Sequence[str]) -> list[str | BaseException]:
        calls.append(list(items))
        if "boom" in items:
            raise RuntimeError("database went away")
        return [item.upper() for item in items]

    batcher: Batcher[str, str] = Batcher(handle, name="test")

    async def scenario() -> tuple[BaseException | str, str]:
        failed = await asyncio.gather(batcher.submit("boom"), return_exceptions=True)
        return failed[0], await batcher.submit("fine")

    failed, fine = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError) and str(failed) == "database went away"
    assert fine == "FINE"


def test_a_handler_returning_the_wrong_number_of_results_is_an_error_for_its_callers() -> None:
    batcher: Batcher[int, int] = Batcher(lambda items: [], name="test")
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        asyncio.run(batcher.submit(1))


def test_the_writer_thread_exits_when_idle_and_a_new_item_starts_it_again() -> None:
    batcher: Batcher[int, int] = Batcher(lambda items: list(items), name="idle-test", idle_s=0.05)

    def writers() -> int:
        return sum(1 for thread in threading.enumerate() if thread.name == "idle-test")

    assert asyncio.run(batcher.submit(1)) == 1
    for _ in range(100):
        if writers() == 0:
            break
        threading.Event().wait(0.02)
    assert writers() == 0
    assert asyncio.run(batcher.submit(2)) == 2
    assert batcher.batches == 2


def _submission(external_id: str, actor: str = "pos-key", source: str = "pos") -> OrderSubmission:
    paid = datetime(2026, 3, 1, 4, tzinfo=UTC)
    return OrderSubmission(OrderIn(source, external_id, paid, 100, None, (), (), None, None), actor)


def test_rounds_keep_arrival_order_and_split_on_a_repeated_key_or_another_actor() -> None:
    batch = [
        _submission("A"),
        _submission("B"),
        _submission("A"),  # the same order again: a replay of the first, so a later round
        _submission("C"),
        _submission("D", actor="mini-key"),
        _submission("A", source="tmall", actor="mini-key"),  # another source's "A" is another order
        _submission("E"),
    ]
    assert rounds(batch) == [[0, 1], [2, 3], [4, 5], [6]]
    assert rounds([]) == []

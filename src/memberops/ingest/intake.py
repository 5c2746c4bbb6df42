"""Orders from the API, written in groups: concurrent requests share one transaction.

A till posts one order and waits for its answer; a hundred tills post a hundred. Writing each in
its own transaction spends most of the time on what every transaction costs (locks, round trips,
the commit) rather than on the order. ``OrderIntake`` hands the orders that arrive while a write is
running to the next write as one batch (``kit.batching.Batcher``), through the same
``ingest_orders`` the importer uses, and answers each request with its own outcome.

What a caller sees is what it would see if the orders had been written one at a time, in the order
they arrived:

- two requests for one ``(source, external_id)`` in a batch are written in two rounds of the same
  transaction, so the second is a replay of the first, exactly as if it had come a moment later;
- a rejected order (unknown store, …) is that request's 422 and writes nothing, the rest commit;
- when the batch's transaction fails as a whole (a deadlock with another process, a lost
  connection), nothing of it stays and every order is written again alone, so one order's failure
  is only ever its own request's error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from memberops.ingest.records import OrderIn, RecordRejected
from memberops.ingest.service import IngestService, OrderOutcome
from memberops.kit.batching import Batcher
from memberops.kit.db import one_of, unit_of_work
from memberops.models import Order, table_of


@dataclass(frozen=True, slots=True)
class OrderSubmission:
    """One order and who sent it (the actor recorded on any merge it causes)."""

    order: OrderIn
    actor: str


@dataclass(frozen=True, slots=True)
class OrderWritten:
    """A stored order as the API reports it; a replay carries what was stored the first time."""

    order_id: int
    person_id: int | None
    created: bool
    paid_at: datetime
    amount_fen: int


def rounds(submissions: Sequence[OrderSubmission]) -> list[list[int]]:
    """Split a batch (as indexes) into consecutive runs of one actor with no natural key twice.

    Each run is one ``ingest_orders`` call; running them in order inside one transaction gives
    what writing every order alone, in arrival order, would give.
    """
    runs: list[list[int]] = []
    keys: set[tuple[str, str]] = set()
    actor: str | None = None
    for index, submission in enumerate(submissions):
        key = (submission.order.source, submission.order.external_id)
        if not runs or submission.actor != actor or key in keys:
            runs.append([])
            keys, actor = set(), submission.actor
        runs[-1].append(index)
        keys.add(key)
    return runs


class OrderIntake:
    """Writes submitted orders in batches on one thread; ``submit`` awaits one order's result."""

    def __init__(self, sessions: sessionmaker[Session], ingest: IngestService, *, max_batch: int = 256):
        self._sessions = sessions
        self._ingest = ingest
        self._batcher: Batcher[OrderSubmission, OrderWritten] = Batcher(
            self.write, name="order-intake", max_batch=max_batch
        )

    @property
    def batches(self) -> int:
        """How many transactions the intake has run so far (batches, not retries)."""
        return self._batcher.batches

    async def submit(self, order: OrderIn, *, actor: str) -> OrderWritten:
        """Store ``order`` (or find it stored); raise ``RecordRejected`` when it is refused."""
        return await self._batcher.submit(OrderSubmission(order, actor))

    def write(self, submissions: Sequence[OrderSubmission]) -> list[OrderWritten | BaseException]:
        """Write a batch in one transaction; if that fails, each order alone in its own."""
        try:
            with unit_of_work(self._sessions) as session:
                return self._write(session, submissions)
        except Exception as error:
            if len(submissions) == 1:
                return [error]
        results: list[OrderWritten | BaseException] = []
        for submission in submissions:
            try:
                with unit_of_work(self._sessions) as session:
                    results += self._write(session, [submission])
            except Exception as error:
                results.append(error)
        return results

    def _write(
        self, session: Session, submissions: Sequence[OrderSubmission]
    ) -> list[OrderWritten | BaseException]:
        outcomes: list[OrderOutcome | None] = [None] * len(submissions)
        for run in rounds(submissions):
            orders = [submissions[i].order for i in run]
            found = self._ingest.ingest_orders(session, orders, actor=submissions[run[0]].actor)
            for index, outcome in zip(run, found, strict=True):
                outcomes[index] = outcome
        stored = _stored_terms(
            session,
            [o.order_id for o in outcomes if o is not None and not o.created and o.order_id is not None],
        )
        results: list[OrderWritten | BaseException] = []
        for submission, maybe in zip(submissions, outcomes, strict=True):
            assert maybe is not None
            outcome = maybe
            if outcome.rejection is not None or outcome.order_id is None:
                results.append(RecordRejected(outcome.rejection or "the order was not stored"))
                continue
            # A new order is what was sent; only a replay reports what was stored first.
            paid_at, amount_fen = (
                (submission.order.paid_at, submission.order.amount_fen)
                if outcome.created
                else stored[outcome.order_id]
            )
            results.append(
                OrderWritten(outcome.order_id, outcome.person_id, outcome.created, paid_at, amount_fen)
            )
        return results


def _stored_terms(session: Session, order_ids: list[int]) -> dict[int, tuple[datetime, int]]:
    if not order_ids:
        return {}
    orders = table_of(Order)
    rows = session.execute(
        select(orders.c.id, orders.c.paid_at, orders.c.amount_fen).where(one_of(orders.c.id, order_ids))
    )
    return {order_id: (paid_at, amount_fen) for order_id, paid_at, amount_fen in rows}

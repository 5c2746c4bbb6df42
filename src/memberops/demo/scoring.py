"""Score OneID against the demo's truth file: merge precision and recall.

Reads the person OneID gave every stored order and event, joins it to the truth by
``(kind, source, external_id)``, and keeps the records OneID could know anything about (well-formed,
carrying an identifier), exactly the population ``oneid_accuracy`` is defined on.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select

from memberops.demo.accuracy import OneIdAccuracy, oneid_accuracy
from memberops.kit.db import unit_of_work
from memberops.models import Event, Order
from memberops.wiring import Services

_FETCH = 100_000


def _predicted(services: Services) -> pa.Table:
    kinds: list[str] = []
    sources: list[str] = []
    external_ids: list[str | None] = []
    persons: list[int | None] = []
    with unit_of_work(services.read_sessions) as session:
        queries = [
            ("order", select(Order.source, Order.external_id, Order.person_id)),
            (
                "event",
                select(Event.field, Event.external_id, Event.person_id).where(Event.external_id.is_not(None)),
            ),
        ]
        for kind, query in queries:
            for rows in session.execute(query.execution_options(yield_per=_FETCH)).partitions():
                for source, external_id, person_id in rows:
                    kinds.append(kind)
                    sources.append(source)
                    external_ids.append(external_id)
                    persons.append(person_id)
    return pa.table(
        {
            "kind": pa.array(kinds, pa.string()),
            "source": pa.array(sources, pa.string()),
            "external_id": pa.array(external_ids, pa.string()),
            "predicted": pa.array(persons, pa.int64()),
        }
    )


def score_oneid(services: Services, truth_path: Path) -> OneIdAccuracy:
    """Return OneID's precision and recall on the records of ``truth_path`` stored in the database."""
    truth = pq.read_table(
        truth_path, columns=["kind", "source", "external_id", "person", "malformed", "component"]
    )
    truth = truth.filter(pc.and_(pc.invert(truth["malformed"]), pc.is_valid(truth["component"])))
    joined = truth.join(_predicted(services), keys=["kind", "source", "external_id"], join_type="left outer")
    return oneid_accuracy(joined["person"], joined["component"], joined["predicted"])

"""The raw baseline shared by the benchmarks: insert the very rows a run of ours stored.

Ours writes its rows through the whole pipeline; raw reads those rows back from ours' database and
inserts them, unchanged (same ids, same foreign keys, so every index gets the same keys), into a
fresh database with plain SQLAlchemy Core ``insert()`` executemany, one transaction a chunk. Only
the inserts of the *timed* tables are measured; the tables they depend on go in first, untimed.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select

from memberops.kit.db import make_engine
from memberops.models import Base

#: Rows a transaction: the importer's batch size.
CHUNK = 2000


def status_mb(field_name: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (``VmHWM``: peak, ``VmRSS``: now), MiB.

    ``ru_maxrss`` would be wrong here: Linux carries it over from the parent at fork, so a child
    forked by a parent that once held the generated data would report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used: the client side of the work, which a busy
    machine stretches less than the wall-clock time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stored_rows(source: Connection, table: Table, chunk: int) -> Iterator[list[dict[str, Any]]]:
    """Yield what ``table`` holds in ``source``, in id order, ``chunk`` rows at a time.

    Persons merged into another come after every live person, so the survivor a merged row
    points at (always a live person: merges re-point chains) is already there.
    """
    order: list[Any] = list(table.primary_key.columns)
    if table.name == "persons":
        order = [table.c.merged_into_id.is_not(None), table.c.id]
    result = source.execution_options(stream_results=True, yield_per=chunk).execute(
        select(table).order_by(*order)
    )
    for part in result.mappings().partitions(chunk):
        yield [dict(row) for row in part]


def copy_rows(url: str, source_url: str, timed: Sequence[str]) -> dict[str, Any]:
    """Copy every table of ``source_url`` into ``url`` in dependency order; time ``timed`` only.

    A table the fresh database already holds rows of (the channels the migration seeds) is left
    as it is. Returns the seconds and CPU seconds of the timed inserts and the rows per table.
    """
    engine = make_engine(url)
    source_engine = make_engine(source_url)
    seconds = 0.0
    cpu = 0.0
    inserted: dict[str, int] = {}
    try:
        with source_engine.connect() as source:
            for table in Base.metadata.sorted_tables:
                with engine.connect() as target:
                    if target.scalar(select(func.count()).select_from(table)):
                        continue
                measured = table.name in timed
                # an order has two lines on average: keep a chunk about one import batch of work
                chunk = CHUNK * 2 if table.name == "order_lines" else CHUNK
                for rows in stored_rows(source, table, chunk):
                    clock, cpu_clock = time.perf_counter(), cpu_s()
                    with engine.begin() as connection:
                        connection.execute(insert(table), rows)
                    if measured:
                        seconds += time.perf_counter() - clock
                        cpu += cpu_s() - cpu_clock
                    inserted[table.name] = inserted.get(table.name, 0) + len(rows)
                if table.name in inserted:
                    label = "timed" if measured else "untimed"
                    done = f"{inserted[table.name]:>9,} {table.name} ({label})"
                    print(f"    raw:  {done}, {seconds:,.1f} s timed so far", file=sys.stderr, flush=True)
    finally:
        engine.dispose()
        source_engine.dispose()
    return {"seconds": seconds, "cpu_s": cpu, "inserted": inserted}

"""Read and validate an import file batch by batch, in this process or in a second one.

Parsing a row (decoding, validating, normalising phones, converting yuan to fen) is pure Python
work that needs no database, while storing a batch is mostly waiting on the database. On a
machine with two or more cores a big file is therefore read and parsed by a worker process one
or two batches ahead of the one being stored, so the two overlap. The worker runs exactly the
same code as the in-process path (``parsed_batches``), so both give the same records and the
same rejections in the same order; only where the work runs differs.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue as queue_module
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from memberops.ingest.profiles import PROFILES
from memberops.ingest.readers import RawRow, read_rows
from memberops.ingest.records import EventIn, OrderIn, RecordRejected, parse_event, parse_order
from memberops.kit.pickling import Reduced, reduce_tuple

RecordKind = Literal["orders", "events"]
Record = OrderIn | EventIn

#: Files at least this large are parsed in a worker process (when there is a second core): below
#: it, the overlap saves too little to be worth a second process.
BACKGROUND_MIN_BYTES = 8 * 1024 * 1024
#: Batches the worker may run ahead: enough to never leave the database waiting, few enough that
#: memory stays flat however large the file.
QUEUE_DEPTH = 3
#: How often a waiting side checks that the other is still alive, in seconds.
_POLL_S = 1.0


class ParsedRow(NamedTuple):
    """One row of the file: where it was, what it said, and the record or why it was rejected."""

    row: RawRow
    record: Record | None
    rejection: str | None

    def __reduce__(self) -> Reduced:
        return reduce_tuple(self)


@dataclass(frozen=True)
class ParseJob:
    """What to parse and how; plain values, so it can be sent to a worker process."""

    path: Path
    kind: RecordKind
    profile: str
    naive_zone: str | None
    batch_size: int


def _parse(job: ParseJob, values: dict[str, Any]) -> Record:
    if job.kind == "orders":
        return parse_order(PROFILES[job.profile].to_canonical(values), naive_zone=job.naive_zone)
    return parse_event(values, naive_zone=job.naive_zone)


def _parse_row(job: ParseJob, row: RawRow) -> ParsedRow:
    if row.unreadable:
        return ParsedRow(row, None, row.unreadable)
    try:
        return ParsedRow(row, _parse(job, row.values), None)
    except RecordRejected as error:
        return ParsedRow(row, None, str(error))


def parsed_batches(job: ParseJob) -> Iterator[list[ParsedRow]]:
    """Yield the file's rows parsed, ``job.batch_size`` at a time, in file order."""
    batch: list[ParsedRow] = []
    for row in read_rows(job.path):
        batch.append(_parse_row(job, row))
        if len(batch) >= job.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def should_parse_in_background(path: Path) -> bool:
    """Whether a worker process pays for itself: a big file, a spare core, and ``fork``."""
    return (
        "fork" in multiprocessing.get_all_start_methods()
        and (os.cpu_count() or 1) > 1
        and path.stat().st_size >= BACKGROUND_MIN_BYTES
    )


@dataclass(frozen=True)
class _Done:
    pass


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def _put(channel: Any, item: object) -> bool:
    """Hand ``item`` over, giving up if the importing process has gone (killed, say)."""
    parent = multiprocessing.parent_process()
    while True:
        try:
            channel.put(item, timeout=_POLL_S)
            return True
        except queue_module.Full:
            if parent is not None and not parent.is_alive():
                return False


def _produce(job: ParseJob, channel: Any) -> None:
    """The worker process: parse the file and pass the batches on, then say it is done.

    If the importer goes away (killed), the worker stops too, and it does not wait to flush what
    nobody will read: a process that has put data on a queue otherwise waits at exit until the
    data is read, which would be forever.
    """
    try:
        for batch in parsed_batches(job):
            if not _put(channel, batch):
                channel.cancel_join_thread()
                return
    except Exception as error:  # handed to the importing process, which raises it there
        if not _put(channel, _Failed(error)):
            channel.cancel_join_thread()
        return
    if not _put(channel, _Done()):
        channel.cancel_join_thread()


def _receive(channel: Any) -> Any:
    """Take the next item, unpickling it with the cyclic garbage collector paused.

    A batch is tens of thousands of new objects, none of them garbage; with the collector on,
    their allocation sets off collections that walk the whole heap of a long import, which cost
    several times the unpickling itself.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return channel.get(timeout=_POLL_S)
    finally:
        if collecting:
            gc.enable()


def parsed_batches_in_background(job: ParseJob) -> Iterator[list[ParsedRow]]:
    """Like ``parsed_batches``, with the reading and parsing done by a worker process.

    The worker is forked: a fresh interpreter (``spawn``) would re-run the caller's main module,
    which a script without an ``if __name__ == "__main__"`` guard does not survive. The fork
    touches none of what it inherits (database connections, other threads): it only reads the
    file and parses, and it leaves with ``os._exit``, so no inherited connection is closed under
    the importer. It stops when the importer stops reading or goes away.
    """
    context = multiprocessing.get_context("fork")
    channel = context.Queue(maxsize=QUEUE_DEPTH)
    worker = context.Process(target=_produce, args=(job, channel), name="memberops-parse", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = _receive(channel)
            except queue_module.Empty:
                if worker.is_alive():
                    continue
                try:  # it may have handed over its last batch just before it exited
                    item = _receive(channel)
                except queue_module.Empty:
                    raise RuntimeError(f"the process parsing {job.path.name} stopped unexpectedly") from None
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join()
        channel.close()

"""Bulk import of stores, orders and events from files.

Rows are validated one by one (a bad row is reported with its line and reason and the rest go
in), then stored in batches, each batch one transaction through the same services the API uses.
Because every record is keyed by its natural key, running a file again adds nothing, and an
import killed half-way and run again ends exactly where one uninterrupted run would: the
committed batches are skipped as duplicates and the rest is applied in the same order.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast

from sqlalchemy import select

from memberops.ingest.pipeline import (
    ParsedRow,
    ParseJob,
    RecordKind,
    parsed_batches,
    parsed_batches_in_background,
    should_parse_in_background,
)
from memberops.ingest.profiles import PROFILES, Profile
from memberops.ingest.readers import RawRow, columns_of, read_rows
from memberops.ingest.records import EventIn, OrderIn
from memberops.ingest.service import DUPLICATE_IN_BATCH
from memberops.kit.clock import utc_now
from memberops.kit.db import refresh_statistics, unit_of_work
from memberops.kit.errors import ValidationFailed
from memberops.kit.memory import collect_between_batches
from memberops.models import Store
from memberops.wiring import Services

Kind = Literal["orders", "events", "stores"]
Progress = Callable[[int], None]
T = TypeVar("T")

#: Rows per transaction: large enough that per-batch queries amortise, small enough that a
#: crash loses little work and memory stays flat.
BATCH_SIZE = 2000
STORE_COLUMNS = ("code", "name", "city", "store_type")
#: Tables a bulk import grows and then looks up in.
ANALYSED_TABLES = ("orders", "order_lines", "refunds", "events", "persons", "identifiers", "memberships")
EVENT_REQUIRED = ("type", "occurred_at", "field")


@dataclass
class ImportSummary:
    """What an import did: rows read, imported, already there, and rejected (with reasons)."""

    path: Path
    kind: Kind
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    reject_path: Path | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        label = reason.split(":")[0].split("'")[0].strip()
        self.reasons[label] = self.reasons.get(label, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "kind": self.kind,
            "rows": self.rows,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "reject_file": str(self.reject_path) if self.reject_path else None,
            "reject_reasons": dict(sorted(self.reasons.items(), key=lambda item: -item[1])),
        }


class RejectWriter:
    """Writes rejected rows to a CSV next to the input: line, reason, and the row as JSON.

    Rows are held per batch and written in line order, whichever check rejected them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(["line", "reason", "row"])
        self._pending: list[tuple[int, str, dict[str, Any]]] = []

    def write(self, line: int, reason: str, values: dict[str, Any]) -> None:
        self._pending.append((line, reason, values))

    def flush(self) -> None:
        for line, reason, values in sorted(self._pending, key=lambda item: item[0]):
            self._writer.writerow([line, reason, json.dumps(values, ensure_ascii=False, default=str)])
        self._pending.clear()
        self._handle.flush()

    def close(self) -> None:
        self.flush()
        self._handle.close()


def default_reject_path(path: Path) -> Path:
    """Return ``FILE.rejects.csv`` beside the input file."""
    return path.with_name(path.name + ".rejects.csv")


def _batches(items: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_columns(path: Path, required: tuple[str, ...]) -> None:
    present = set(columns_of(path))
    missing = [column for column in required if column not in present]
    if missing:
        raise ValidationFailed(
            f"{path.name}: missing required column(s) {', '.join(missing)}", missing=missing
        )


def check_file(path: Path, kind: Kind, profile: str = "canonical") -> Profile:
    """Refuse a file that cannot be imported at all (missing, unknown format, missing columns)."""
    if not path.is_file():
        raise ValidationFailed(f"{path}: no such file")
    chosen = PROFILES.get(profile)
    if chosen is None:
        raise ValidationFailed(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
    if kind == "orders":
        _check_columns(path, chosen.required_columns)
    elif kind == "events":
        _check_columns(path, EVENT_REQUIRED)
    else:
        _check_columns(path, STORE_COLUMNS)
    return chosen


def import_file(
    services: Services,
    path: Path,
    kind: Kind,
    *,
    profile: str = "canonical",
    reject_path: Path | None = None,
    actor: str = "import",
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    background_parse: bool | None = None,
) -> ImportSummary:
    """Import ``path`` as ``kind``; raise ``ValidationFailed`` (nothing written) if the file is unusable.

    ``background_parse`` parses in a worker process while this one stores (default: for big
    files on a machine with a spare core); the result is the same either way.
    """
    chosen = check_file(path, kind, profile)
    summary = ImportSummary(path=path, kind=kind)
    rejects = RejectWriter(reject_path or default_reject_path(path))
    try:
        if kind == "stores":
            for batch in _batches(read_rows(path), batch_size):
                summary.rows += len(batch)
                _store_batch(services, batch, summary, rejects)
                rejects.flush()
                if progress:
                    progress(len(batch))
        else:
            job = ParseJob(
                path=path,
                kind=kind,
                profile=profile,
                naive_zone=services.settings.time_zone if kind == "orders" and chosen.local_times else None,
                batch_size=batch_size,
            )
            if background_parse is None:
                background_parse = should_parse_in_background(path)
            batches = parsed_batches_in_background(job) if background_parse else parsed_batches(job)
            _record_batches(services, kind, batches, summary, rejects, actor, progress)
    finally:
        rejects.close()
    if summary.rejected:
        summary.reject_path = rejects.path
    else:
        rejects.path.unlink(missing_ok=True)
    return summary


class _Outcome(Protocol):
    @property
    def created(self) -> bool: ...

    @property
    def rejection(self) -> str | None: ...


def _store(
    services: Services, kind: RecordKind, records: list[OrderIn | EventIn | None], actor: str
) -> Sequence[_Outcome]:
    """Store one batch of valid records in one transaction, through the services the API uses."""
    with unit_of_work(services.sessions) as session:
        if kind == "orders":
            orders = [cast(OrderIn, record) for record in records]
            return services.ingest.ingest_orders(session, orders, actor=actor)
        events = [cast(EventIn, record) for record in records]
        return services.ingest.ingest_events(session, events, actor=actor)


def _record_batches(
    services: Services,
    kind: RecordKind,
    batches: Iterator[list[ParsedRow]],
    summary: ImportSummary,
    rejects: RejectWriter,
    actor: str,
    progress: Progress | None,
) -> None:
    """Store each parsed batch in one transaction; a row rejected by parsing is reported, not stored."""
    with collect_between_batches() as after_batch:
        _store_batches(services, kind, batches, summary, rejects, actor, progress, after_batch)


def _store_batches(
    services: Services,
    kind: RecordKind,
    batches: Iterator[list[ParsedRow]],
    summary: ImportSummary,
    rejects: RejectWriter,
    actor: str,
    progress: Progress | None,
    after_batch: Callable[[], None],
) -> None:
    analysed_at = 0
    for batch in batches:
        if summary.imported >= max(2 * analysed_at, len(batch)):
            # the tables have doubled since the planner last looked: let it look again
            refresh_statistics(services.engine, ANALYSED_TABLES)
            analysed_at = summary.imported
        summary.rows += len(batch)
        valid: list[ParsedRow] = []
        for parsed in batch:
            if parsed.rejection is not None:
                summary.reject(parsed.rejection)
                rejects.write(parsed.row.line, parsed.rejection, parsed.row.values)
            else:
                valid.append(parsed)
        if valid:
            outcomes = _store(services, kind, [parsed.record for parsed in valid], actor)
            for stored, outcome in zip(valid, outcomes, strict=True):
                _count(summary, rejects, stored.row, outcome.created, outcome.rejection)
        rejects.flush()
        after_batch()
        if progress:
            progress(len(batch))


def _count(
    summary: ImportSummary, rejects: RejectWriter, row: RawRow, created: bool, rejection: str | None
) -> None:
    if created:
        summary.imported += 1
    elif rejection is None or rejection == DUPLICATE_IN_BATCH:
        summary.duplicates += 1
    else:
        summary.reject(rejection)
        rejects.write(row.line, rejection, row.values)


def _store_batch(
    services: Services, batch: list[RawRow], summary: ImportSummary, rejects: RejectWriter
) -> None:
    valid: dict[str, dict[str, str]] = {}
    for row in batch:
        values = {column: str(row.values.get(column) or "").strip() for column in STORE_COLUMNS}
        missing = [column for column, value in values.items() if not value]
        if row.unreadable or missing:
            reason = row.unreadable or f"{', '.join(missing)} missing"
            summary.reject(reason)
            rejects.write(row.line, reason, row.values)
        elif len(values["code"]) > 32:
            summary.reject("code is longer than 32 characters")
            rejects.write(row.line, "code is longer than 32 characters", row.values)
        elif values["code"] in valid:
            summary.duplicates += 1
        else:
            valid[values["code"]] = values
    if not valid:
        return
    with unit_of_work(services.sessions) as session:
        known = {
            store.code: store for store in session.scalars(select(Store).where(Store.code.in_(list(valid))))
        }
        for code, values in valid.items():
            store = known.get(code)
            if store is None:
                session.add(Store(created_at=utc_now(), **values))
                summary.imported += 1
            elif (store.name, store.city, store.store_type) == (
                values["name"],
                values["city"],
                values["store_type"],
            ):
                summary.duplicates += 1
            else:
                store.name, store.city, store.store_type = (
                    values["name"],
                    values["city"],
                    values["store_type"],
                )
                summary.imported += 1

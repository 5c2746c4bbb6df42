"""Read CSV, JSONL and Parquet files as numbered rows, streaming (a file never sits in memory).

Line numbers are what a person opening the file sees: a CSV's header is line 1, so its first
record is line 2; a JSONL's first object is line 1; a Parquet file's first row is row 1.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from memberops.kit.errors import ValidationFailed
from memberops.kit.pickling import Reduced, reduce_tuple

_PARQUET_BATCH = 8192


class RawRow(NamedTuple):
    """One row as read: its line number and its columns, or why it could not be read at all."""

    line: int
    values: dict[str, Any]
    unreadable: str | None = None

    def __reduce__(self) -> Reduced:
        return reduce_tuple(self)


def file_format(path: Path) -> str:
    """Return ``csv``, ``jsonl`` or ``parquet`` from the file name, or raise."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    raise ValidationFailed(f"{path.name}: unknown format {suffix!r}; use .csv, .jsonl or .parquet")


def count_rows(path: Path) -> int:
    """Return how many records the file holds (for the progress bar)."""
    kind = file_format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq  # imported on use: it costs half a second of CLI start-up

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(lines - 1, 0) if kind == "csv" else lines


def columns_of(path: Path) -> list[str]:
    """Return the column names a file declares (CSV header, Parquet schema, first JSONL object)."""
    kind = file_format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if kind == "csv":
            return next(csv.reader(handle), [])
        for line in handle:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    return []
                return list(first) if isinstance(first, dict) else []
    return []


def read_rows(path: Path) -> Iterator[RawRow]:
    """Yield every record of the file with its line number."""
    kind = file_format(path)
    if kind == "csv":
        yield from _csv_rows(path)
    elif kind == "jsonl":
        yield from _jsonl_rows(path)
    else:
        yield from _parquet_rows(path)


def _csv_rows(path: Path) -> Iterator[RawRow]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        width = len(header)
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != width:
                yield RawRow(reader.line_num, {}, f"expected {width} columns, found {len(record)}")
                continue
            yield RawRow(reader.line_num, dict(zip(header, record, strict=True)))


def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                yield RawRow(number, {}, f"not valid JSON: {error.msg}")
                continue
            if not isinstance(value, dict):
                yield RawRow(number, {}, "not a JSON object")
                continue
            yield RawRow(number, value)


def _parquet_rows(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_PARQUET_BATCH):
        for values in batch.to_pylist():
            number += 1
            yield RawRow(number, values)

"""Write the demo files chunk by chunk, and the truth row of every record beside them.

CSV and Parquet go through pyarrow from rendered string columns; JSONL lines are rendered whole and
written as bytes, which is the fast path for tens of millions of lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from memberops.demo import formats
from memberops.demo.catalogue import CHANNEL_CODES, FIELD_CODES, STORE_TYPES, Field, IdType, Stores, bit
from memberops.demo.defects import (
    AMOUNT_NEGATIVE,
    AMOUNT_TEXT,
    ITEMS_NOT_JSON,
    MISSING_TIME,
    PHONE_BAD_PREFIX,
    PHONE_TOO_SHORT,
    UNKNOWN_STORE,
)
from memberops.demo.events import (
    CANCEL,
    CANCEL_REASONS,
    CONSENT,
    CONSENT_CHANNELS,
    GROUPS_PER_STORE,
    JOIN_GROUP,
    LEAVE_GROUP,
    PAGES,
    REGISTER,
    REVIEW,
    SHARE,
    VISIT,
    EventTable,
)
from memberops.demo.orders import OrderTable
from memberops.demo.population import Population
from memberops.demo.referrals import SHARE_TARGETS
from memberops.demo.text import Bools, Piece, Vocabulary, gate, integer, joined_bytes, literal, to_arrow, yuan
from memberops.ingest.records import EVENT_TYPES

I64 = npt.NDArray[np.int64]
Progress = Callable[[str, int, int], None]

TRUTH_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("source", pa.string()),
        ("external_id", pa.string()),
        ("person", pa.int64()),
        ("malformed", pa.bool_()),
        ("component", pa.int64()),
        ("file", pa.string()),
        ("line", pa.int64()),
    ]
)
_TYPES = Vocabulary.of(EVENT_TYPES)
_FIELDS = Vocabulary.of(FIELD_CODES)
_REASONS = Vocabulary.of(CANCEL_REASONS)
_PAGES = Vocabulary.of(PAGES)
_TARGETS = Vocabulary.of(SHARE_TARGETS)
_CONSENT_CHANNELS = Vocabulary.of(CONSENT_CHANNELS)
_BOOLEANS = Vocabulary.of(("false", "true"))
_PLATFORM_IDS = (IdType.TMALL, IdType.DOUYIN, IdType.MEITUAN)


@dataclass(frozen=True)
class Cell:
    """One column of a chunk: its rendered pieces, where it has a value, and whether JSON quotes it."""

    name: str
    pieces: list[Piece]
    present: Bools | None = None
    quoted: bool = True


@dataclass(frozen=True)
class Context:
    """What every writer needs to spell a value."""

    directory: Path
    population: Population
    stores: Stores
    epoch_day: int
    offsets: I64
    chunk_rows: int
    progress: Progress | None

    @property
    def store_codes(self) -> Vocabulary:
        """Store codes by store index."""
        return Vocabulary.of(self.stores.codes)

    def report(self, stage: str, done: int, total: int) -> None:
        """Tell the caller how far a stage is."""
        if self.progress is not None:
            self.progress(stage, done, total)


class TruthWriter:
    """Collects the truth row of every record, in file order, into truth.parquet."""

    def __init__(self, path: Path) -> None:
        self._writer = pq.ParquetWriter(path, TRUTH_SCHEMA)

    def append(
        self,
        kind: str,
        source: pa.Array,
        external_id: pa.Array,
        person: I64,
        malformed: Bools,
        component: I64,
        file: str,
        first_line: int,
    ) -> None:
        """Add the truth rows of one chunk; a component of -1 is written as null."""
        rows = person.size
        table = pa.table(
            [
                pa.repeat(pa.scalar(kind, pa.string()), rows),
                source,
                external_id,
                pa.array(person, pa.int64()),
                pa.array(malformed, pa.bool_()),
                pa.array(component, pa.int64(), mask=component < 0),
                pa.repeat(pa.scalar(file, pa.string()), rows),
                pa.array(np.arange(first_line, first_line + rows, dtype=np.int64)),
            ],
            schema=TRUTH_SCHEMA,
        )
        self._writer.write_table(table)

    def close(self) -> None:
        """Finish the Parquet file."""
        self._writer.close()


def write_stores(context: Context) -> int:
    """stores.csv: code, name, city, store_type."""
    stores = context.stores
    table = pa.table(
        {
            "code": pa.array(stores.codes, pa.string()),
            "name": pa.array(stores.names, pa.string()),
            "city": pa.array(stores.cities, pa.string()),
            "store_type": pa.array([STORE_TYPES[kind] for kind in stores.types], pa.string()),
        }
    )
    pa_csv.write_csv(table, context.directory / "stores.csv")
    return len(stores.codes)


def _chunks(rows: int, size: int) -> Iterator[I64]:
    for start in range(0, rows, size):
        yield np.arange(start, min(rows, start + size), dtype=np.int64)


def write_orders(
    context: Context,
    profile: formats.OrderProfile,
    orders: OrderTable,
    file_rows: I64,
    component: I64,
    truth: TruthWriter,
) -> int:
    """One channel's orders (``file_rows`` of the table, in file order) in its own export layout."""
    path = context.directory / profile.file_name
    first_line = 2 if profile.file_format == "csv" else 1
    sink = _TableSink(path, profile.file_format)
    for lines in _chunks(file_rows.size, context.chunk_rows):
        rows = file_rows[lines]
        chunk = orders.take(rows)
        cells = _order_cells(context, profile, chunk)
        sink.write(cells, chunk.size)
        source = pa.repeat(pa.scalar(CHANNEL_CODES[profile.channel], pa.string()), chunk.size)
        external_id = to_arrow(formats.order_id(chunk.channel, chunk.external_number), chunk.size)
        truth.append(
            "order",
            source,
            external_id,
            chunk.person,
            chunk.defect != 0,
            component[rows],
            profile.file_name,
            first_line + int(lines[0]),
        )
        context.report(f"write {profile.file_name}", int(lines[-1]) + 1, file_rows.size)
    sink.close(_order_cells(context, profile, orders.take(np.zeros(0, dtype=np.int64))))
    return int(file_rows.size)


def write_events(
    context: Context, events: EventTable, orders: OrderTable, component: I64, truth: TruthWriter
) -> int:
    """events.jsonl in the canonical event format; returns the rows written."""
    sink = _TableSink(context.directory / "events.jsonl", "jsonl")
    for rows in _chunks(events.size, context.chunk_rows):
        chunk = events.take(rows)
        sink.write(_event_cells(context, chunk, orders), chunk.size)
        source = to_arrow([_FIELDS.piece(chunk.field)], chunk.size)
        external_id = to_arrow(formats.event_id(chunk.external_number), chunk.size)
        truth.append(
            "event",
            source,
            external_id,
            chunk.person,
            chunk.defect != 0,
            component[rows],
            "events.jsonl",
            1 + int(rows[0]),
        )
        context.report("write events.jsonl", int(rows[-1]) + 1, events.size)
    sink.close([])
    return events.size


class _TableSink:
    """Appends chunks of cells to a CSV, Parquet or JSONL file."""

    def __init__(self, path: Path, file_format: str) -> None:
        self._path = path
        self._format = file_format
        self._csv: pa_csv.CSVWriter | None = None
        self._parquet: pq.ParquetWriter | None = None
        if file_format == "jsonl":
            self._jsonl = path.open("wb")

    def write(self, cells: list[Cell], rows: int) -> None:
        if self._format == "jsonl":
            self._jsonl.write(joined_bytes(["{", *_json_members(cells, rows), "}\n"]))
            return
        table = pa.table({cell.name: to_arrow(cell.pieces, rows, cell.present) for cell in cells})
        if self._format == "csv":
            self._csv = self._csv or pa_csv.CSVWriter(self._path, table.schema)
            self._csv.write_table(table)
        else:
            self._parquet = self._parquet or pq.ParquetWriter(self._path, table.schema)
            self._parquet.write_table(table)

    def close(self, empty_cells: list[Cell]) -> None:
        """Finish the file; a file that got no rows still gets its header."""
        if self._format == "jsonl":
            self._jsonl.close()
            return
        if self._csv is None and self._parquet is None:
            self.write(empty_cells, 0)
        for writer in (self._csv, self._parquet):
            if writer is not None:
                writer.close()


def _json_members(cells: list[Cell], rows: int) -> list[pa.Array]:
    """Each cell as ``"key":value`` text per row, null where absent (so the key is left out).

    The first cell must be present on every row: it is the only one without a leading comma. Several
    cells may share a key when at most one of them is present on any row.
    """
    members: list[pa.Array] = []
    for index, cell in enumerate(cells):
        quote = '"' if cell.quoted else ""
        key = ("," if index else "") + json.dumps(cell.name, ensure_ascii=False) + ":" + quote
        members.append(to_arrow([literal(key), *cell.pieces, literal(quote)], rows, cell.present))
    return members


def _identifier(
    context: Context, kind: IdType, person: I64, mask: npt.NDArray[np.uint8]
) -> tuple[Piece, Bools]:
    present = (mask & bit(kind)) != 0
    matrix = context.population.identifier(kind, person)
    return Piece(matrix, 0, matrix.shape[1]).gated(present), present


def _phone_cell(
    context: Context,
    name: str,
    person: I64,
    mask: npt.NDArray[np.uint8],
    style: npt.NDArray[np.uint8],
    defect: npt.NDArray[np.uint8],
) -> Cell:
    present = (mask & bit(IdType.PHONE)) != 0
    digits = context.population.identifier(IdType.PHONE, person)
    piece = formats.phone(digits, style, defect == PHONE_TOO_SHORT, defect == PHONE_BAD_PREFIX, present)
    return Cell(name, [piece], present)


def _order_cells(context: Context, profile: formats.OrderProfile, chunk: OrderTable) -> list[Cell]:
    """The columns of one order chunk in the profile's names, with each row's damage applied."""
    defect = chunk.defect
    text_amount = defect == AMOUNT_TEXT
    amount = np.where(defect == AMOUNT_NEGATIVE, -chunk.amount_fen, chunk.amount_fen)
    offsets = context.offsets if profile.paid_at_with_offset else None
    cells = [
        Cell(profile.external_id, formats.order_id(chunk.channel, chunk.external_number)),
        Cell(
            profile.paid_at,
            [formats.timestamp(chunk.seconds, context.epoch_day, offsets)],
            defect != MISSING_TIME,
        ),
        Cell(profile.amount, [*gate(yuan(amount), ~text_amount), literal("abc", text_amount)]),
    ]
    if profile.store is not None:
        unknown = defect == UNKNOWN_STORE
        pieces = [
            context.store_codes.piece(chunk.store, ~unknown),
            literal(formats.UNKNOWN_STORE_CODE, unknown),
        ]
        cells.append(Cell(profile.store, pieces, chunk.store >= 0))
    if profile.phone is not None:
        cells.append(_phone_cell(context, profile.phone, chunk.person, chunk.mask, chunk.phone_style, defect))
    for name, kind in (
        (profile.member_no, IdType.MEMBER_NO),
        (profile.unionid, IdType.UNIONID),
        (profile.openid, IdType.MP_OPENID),
    ):
        if name is not None:
            piece, present = _identifier(context, kind, chunk.person, chunk.mask)
            cells.append(Cell(name, [piece], present))
    if profile.platform_user_id is not None:
        kind = _PLATFORM_IDS[int(profile.channel) - 2]
        piece, present = _identifier(context, kind, chunk.person, chunk.mask)
        cells.append(Cell(profile.platform_user_id, [piece], present))
    cells += [
        Cell(profile.status, [Vocabulary.of(profile.status_words).piece(chunk.refunded.astype(np.int64))]),
        Cell(profile.refund_amount, yuan(chunk.refund_fen), chunk.refund_fen > 0),
        Cell(
            profile.items,
            formats.items(chunk.lines, chunk.sku, chunk.quantity, chunk.line_fen, defect == ITEMS_NOT_JSON),
            quoted=profile.file_format != "jsonl",
        ),
    ]
    if profile.share_id is not None:
        cells.append(Cell(profile.share_id, formats.share_id(chunk.share), chunk.share >= 0))
    return cells


def _event_cells(context: Context, chunk: EventTable, orders: OrderTable) -> list[Cell]:
    """The canonical event columns of one chunk; a key with several spellings gets a cell for each."""
    mask = chunk.mask
    identifiers = {
        kind: _identifier(context, kind, chunk.person, mask)
        for kind in (IdType.UNIONID, IdType.MP_OPENID, IdType.OA_OPENID, *_PLATFORM_IDS, IdType.MEMBER_NO)
    }
    cells = [
        Cell("type", [_TYPES.piece(chunk.kind)]),
        Cell(
            "occurred_at",
            [formats.timestamp(chunk.seconds, context.epoch_day, context.offsets)],
            chunk.defect != MISSING_TIME,
        ),
        Cell("field", [_FIELDS.piece(chunk.field)]),
        Cell("external_id", formats.event_id(chunk.external_number)),
        _phone_cell(context, "phone", chunk.person, mask, chunk.phone_style, chunk.defect),
    ]
    names = {IdType.UNIONID: "unionid", IdType.MP_OPENID: "openid", IdType.OA_OPENID: "openid"}
    for kind in (IdType.UNIONID, IdType.MP_OPENID, IdType.OA_OPENID):
        piece, present = identifiers[kind]
        cells.append(Cell(names[kind], [piece], present))
    # The live room's ids are Douyin buyer ids: app_id says which platform they belong to.
    cells.append(Cell("app_id", [literal("douyin")], chunk.field == Field.LIVE_ROOM))
    for kind in _PLATFORM_IDS:
        piece, present = identifiers[kind]
        cells.append(Cell("platform_user_id", [piece], present))
    piece, present = identifiers[IdType.MEMBER_NO]
    cells.append(Cell("member_no", [piece], present))
    return cells + _attribute_cells(context, chunk, orders)


def _attribute_cells(context: Context, chunk: EventTable, orders: OrderTable) -> list[Cell]:
    """The ``attributes`` JSON object, one cell per event type; events without any get no key."""
    kind = chunk.kind
    store_codes = context.store_codes
    order = np.maximum(chunk.order, 0)
    page = SHARE_TARGETS.index("page")
    objects = [
        (
            (kind == REGISTER) & (chunk.store >= 0),
            [literal('{"store":"'), store_codes.piece(chunk.store), literal('"}')],
        ),
        (kind == CANCEL, [literal('{"reason":"'), _REASONS.piece(chunk.reason), literal('"}')]),
        (
            (kind == JOIN_GROUP) | (kind == LEAVE_GROUP),
            [
                literal('{"group_id":"wg-'),
                store_codes.piece(chunk.group // GROUPS_PER_STORE),
                literal("-"),
                integer(chunk.group % GROUPS_PER_STORE + 1, 1),
                literal('"}'),
            ],
        ),
        (
            (kind == VISIT) & (chunk.page >= 0),
            [literal('{"page":"'), _PAGES.piece(chunk.page), literal('"}')],
        ),
        (
            kind == SHARE,
            [
                literal('{"share_id":"'),
                *formats.share_id(chunk.share),
                literal('","target":"'),
                _TARGETS.piece(chunk.target),
                literal('"'),
                *gate(
                    [literal(',"sku":"'), formats.SKUS.piece(chunk.sku), literal('"')], chunk.target != page
                ),
                literal("}"),
            ],
        ),
        (
            kind == REVIEW,
            [
                literal('{"sku":"'),
                formats.SKUS.piece(chunk.sku),
                literal('","rating":'),
                integer(chunk.rating, 1),
                literal(',"order_external_id":"'),
                *formats.order_id(orders.channel[order], orders.external_number[order]),
                literal('"}'),
            ],
        ),
        (
            kind == CONSENT,
            [
                literal('{"channel":"'),
                _CONSENT_CHANNELS.piece(chunk.consent_channel),
                literal('","granted":'),
                _BOOLEANS.piece(chunk.granted.astype(np.int64)),
                literal("}"),
            ],
        ),
    ]
    return [Cell("attributes", pieces, present, quoted=False) for present, pieces in objects]

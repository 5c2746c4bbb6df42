"""Render text columns from numpy byte matrices without a Python loop per row.

Formatting ten million CSV or JSON cells one Python string at a time takes minutes. Here a cell is a
sequence of fixed-width byte fields (``Piece``) of which a per-row slice ``[start, stop)`` is kept:
each piece is compacted into an Arrow string column with one boolean mask, constants are passed as
scalars, and Arrow joins the columns row by row in C++. That takes seconds per million rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.integer]

#: The four ASCII digits of 0000-9999 as one little word each, so one gather writes four digits.
_QUADS = np.frombuffer("".join(f"{number:04d}" for number in range(10_000)).encode(), dtype=np.uint32)


@dataclass(frozen=True)
class Piece:
    """A byte field of fixed width per row; bytes ``[start, stop)`` of each row are kept.

    ``matrix`` has one row per output row, or a single row that is shared by all rows.
    """

    matrix: U8
    start: I64 | int
    stop: I64 | int

    def gated(self, present: Bools | None) -> Piece:
        """Return the piece emptied on the rows where ``present`` is false."""
        if present is None:
            return self
        return Piece(self.matrix, self.start, np.where(present, self.stop, self.start))


def gate(pieces: Sequence[Piece], present: Bools | None) -> list[Piece]:
    """Empty every piece on the rows where ``present`` is false (an optional cell or key)."""
    return [piece.gated(present) for piece in pieces]


def literal(text: str, present: Bools | None = None) -> Piece:
    """A constant text, optionally only on some rows."""
    raw = np.frombuffer(text.encode(), dtype=np.uint8).reshape(1, -1)
    return Piece(raw, 0, raw.shape[1]).gated(present)


@dataclass(frozen=True)
class Vocabulary:
    """A small table of texts rendered once, looked up by index per row."""

    matrix: U8
    lengths: I64

    @classmethod
    def of(cls, texts: Sequence[str]) -> Vocabulary:
        """Encode the texts as UTF-8 into a zero-padded matrix."""
        encoded = [text.encode() for text in texts]
        width = max(1, *(len(raw) for raw in encoded))
        matrix = np.zeros((len(encoded), width), dtype=np.uint8)
        for row, raw in enumerate(encoded):
            matrix[row, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        return cls(matrix, np.array([len(raw) for raw in encoded], dtype=np.int64))

    def piece(self, index: Ints, present: Bools | None = None) -> Piece:
        """The text of ``index`` on each row (index may be anything where not present)."""
        safe = np.clip(index, 0, len(self.lengths) - 1)
        return Piece(np.take(self.matrix, safe, axis=0), 0, np.take(self.lengths, safe)).gated(present)


def fixed(matrix: U8, present: Bools | None = None) -> Piece:
    """Whole rows of an already gathered fixed-width matrix (identifiers)."""
    return Piece(matrix, 0, matrix.shape[1]).gated(present)


def digit_matrix(values: Ints, width: int) -> U8:
    """Right-aligned, zero-padded decimal digits of non-negative integers.

    Four digits at a time through a lookup table: integer division is the slow part, so do a quarter.
    """
    remaining = np.asarray(values, dtype=np.int64)
    groups = -(-width // 4)
    words = np.empty((remaining.size, groups), dtype=np.uint32)
    for group in range(groups - 1, -1, -1):
        remaining, quad = np.divmod(remaining, 10_000)
        words[:, group] = np.take(_QUADS, quad)
    trimmed: U8 = words.view(np.uint8).reshape(remaining.size, groups * 4)[:, groups * 4 - width :]
    return trimmed


def integer(values: Ints, width: int, present: Bools | None = None) -> Piece:
    """Decimal digits of non-negative integers below ``10**width``, no padding."""
    values = np.asarray(values, dtype=np.int64)
    largest = int(values.max(initial=0))
    width = max(1, min(width, len(str(largest))))
    length = np.ones(values.shape, dtype=np.int64)
    for power in range(1, width):
        length += values >= 10**power
    return Piece(digit_matrix(values, width), width - length, width).gated(present)


def zero_padded(values: Ints, width: int, present: Bools | None = None) -> Piece:
    """Decimal digits padded with zeros to ``width``."""
    return fixed(digit_matrix(values, width), present)


def yuan(fen: Ints, present: Bools | None = None) -> list[Piece]:
    """Render integer fen as yuan with two decimals (``3680`` → ``36.80``); a negative keeps its sign."""
    fen = np.asarray(fen, dtype=np.int64)
    magnitude = np.abs(fen)
    whole = magnitude // 100
    width = max(1, len(str(int(whole.max(initial=0)))))
    digits = np.ones(fen.shape, dtype=np.int64)
    for power in range(1, width):
        digits += whole >= 10**power
    matrix = np.empty((fen.size, width + 3), dtype=np.uint8)
    matrix[:, :width] = digit_matrix(whole, width)
    matrix[:, width] = ord(".")
    matrix[:, width + 1 :] = digit_matrix(magnitude % 100, 2)
    negative = fen < 0 if present is None else (fen < 0) & present
    return [literal("-", negative), Piece(matrix, width - digits, width + 3).gated(present)]


def _piece_array(piece: Piece, rows: int) -> pa.Array:
    """One piece as an Arrow string column (rows where it is empty hold an empty string)."""
    start = np.broadcast_to(np.asarray(piece.start, dtype=np.int64), (rows,))
    stop = np.broadcast_to(np.asarray(piece.stop, dtype=np.int64), (rows,))
    lengths = np.maximum(stop - start, 0)
    width = piece.matrix.shape[1]
    if piece.matrix.shape[0] == 1 and not isinstance(piece.start, np.ndarray):
        # A constant that some rows leave out: repeat its bytes for the rows that keep it.
        whole = piece.matrix[0, int(piece.start) : width]
        if np.all((lengths == 0) | (lengths == whole.size)):
            data = np.tile(whole, int(np.count_nonzero(lengths)))
        else:
            data = np.broadcast_to(whole, (rows, whole.size))[np.arange(whole.size) < lengths[:, None]]
    elif isinstance(piece.start, int) and piece.start == 0 and np.all((lengths == 0) | (lengths == width)):
        data = piece.matrix[lengths > 0].ravel()  # whole rows or nothing: identifiers, timestamps
    else:
        columns = np.arange(width, dtype=np.uint8)
        keep = (columns >= start.astype(np.uint8)[:, None]) & (columns < stop.astype(np.uint8)[:, None])
        data = np.ascontiguousarray(np.broadcast_to(piece.matrix, (rows, width))).ravel()[keep.ravel()]
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes()))


def _constant(piece: Piece) -> str | None:
    """The text of a piece that is the same on every row, else None."""
    if (
        piece.matrix.shape[0] != 1
        or isinstance(piece.start, np.ndarray)
        or isinstance(piece.stop, np.ndarray)
    ):
        return None
    return bytes(piece.matrix[0, piece.start : piece.stop]).decode()


def _subset(piece: Piece, rows: I64) -> Piece:
    """The piece on the chosen rows only."""
    matrix = piece.matrix if piece.matrix.shape[0] == 1 else np.take(piece.matrix, rows, axis=0)
    start = piece.start if isinstance(piece.start, int) else np.take(piece.start, rows)
    stop = piece.stop if isinstance(piece.stop, int) else np.take(piece.stop, rows)
    return Piece(matrix, start, stop)


def _joined(pieces: Sequence[Piece], rows: int) -> pa.Array:
    """Concatenate the pieces row by row, each rendered as its own narrow column, joined by Arrow.

    Narrow per-piece columns avoid numpy's slow strided writes into one wide matrix, and pieces empty
    on every row cost nothing.
    """
    parts: list[pa.Array | str] = []
    for piece in pieces:
        constant = _constant(piece)
        if constant is not None:
            if constant:
                parts.append(constant)
        elif np.any(np.asarray(piece.stop) > np.asarray(piece.start)):
            parts.append(_piece_array(piece, rows))
    if not any(isinstance(part, pa.Array) for part in parts):
        return pa.repeat(pa.scalar("".join(str(part) for part in parts), pa.string()), rows)
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "", null_handling="skip")


def to_arrow(pieces: Sequence[Piece], rows: int, valid: Bools | None = None) -> pa.Array:
    """Render into an Arrow string array; rows where ``valid`` is false become null (and cost nothing)."""
    if valid is None or bool(valid.all()):
        return _joined(pieces, rows)
    chosen = np.flatnonzero(valid)
    if chosen.size == 0:
        return pa.nulls(rows, pa.string())
    dense = _joined([_subset(piece, chosen) for piece in pieces], chosen.size)
    window = dense.buffers()[1].slice(dense.offset * 4, (len(dense) + 1) * 4)
    dense_offsets = np.frombuffer(window, dtype=np.int32)
    lengths = np.zeros(rows, dtype=np.int64)
    lengths[chosen] = np.diff(dense_offsets)
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    offsets += dense_offsets[0]
    validity = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    data = dense.buffers()[2] if len(dense) else pa.py_buffer(b"")
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets.tobytes()), data, validity)


def joined_bytes(columns: Sequence[pa.Array | str]) -> memoryview:
    """Concatenate string columns (or constant texts) row by row, leaving nulls out, as one byte run."""
    joined = pc.binary_join_element_wise(*columns, "", null_handling="skip")
    if len(joined) == 0 or joined.buffers()[2] is None:
        return memoryview(b"")
    window = joined.buffers()[1].slice(joined.offset * 4, (len(joined) + 1) * 4)
    offsets = np.frombuffer(window, dtype=np.int32)
    data = joined.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    return memoryview(data)

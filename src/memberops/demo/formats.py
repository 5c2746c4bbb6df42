"""How the demo's values are spelt in the files: channel profiles, ids, times, phones and baskets.

Everything is rendered through ``text.Piece`` byte matrices so that millions of rows format in seconds.
The channel profiles follow docs/import-formats.md ("Channel profiles") column for column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from memberops.demo.calendar import SECONDS_PER_DAY
from memberops.demo.catalogue import Channel, product_categories, product_skus
from memberops.demo.text import (
    Bools,
    Ints,
    Piece,
    Vocabulary,
    digit_matrix,
    fixed,
    integer,
    literal,
    yuan,
    zero_padded,
)
from memberops.ingest.profiles import PROFILES as IMPORT_PROFILES

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class OrderProfile:
    """A channel's export layout: its file, its column names and its status words (None: no such column)."""

    name: str
    channel: Channel
    file_name: str
    file_format: Literal["csv", "jsonl", "parquet"]
    external_id: str
    paid_at: str
    paid_at_with_offset: bool
    amount: str
    store: str | None
    phone: str | None
    member_no: str | None
    unionid: str | None
    openid: str | None
    platform_user_id: str | None
    status: str
    status_words: tuple[str, str]  # paid, refunded
    refund_amount: str
    items: str
    share_id: str | None


def _export_layout(
    name: str, channel: Channel, file_name: str, file_format: Literal["csv", "jsonl", "parquet"]
) -> OrderProfile:
    """Lay a channel's export out exactly as the importer's profile of that channel reads it."""
    profile = IMPORT_PROFILES[name]
    columns = profile.columns
    word_for = {canonical: word for word, canonical in profile.status_words.items()}
    return OrderProfile(
        name=name,
        channel=channel,
        file_name=file_name,
        file_format=file_format,
        external_id=columns["external_id"],
        paid_at=columns["paid_at"],
        paid_at_with_offset=not profile.local_times,
        amount=columns["amount"],
        store=columns.get("store"),
        phone=columns.get("phone"),
        member_no=columns.get("member_no"),
        unionid=columns.get("unionid"),
        openid=columns.get("openid"),
        platform_user_id=columns.get("platform_user_id"),
        status=columns["status"],
        status_words=(word_for["paid"], word_for["refunded"]),
        refund_amount=columns["refund_amount"],
        items=columns["items"],
        share_id=columns.get("share_id"),
    )


PROFILES: tuple[OrderProfile, ...] = (
    _export_layout("pos", Channel.POS, "pos.csv", "csv"),
    _export_layout("mini_program", Channel.MINI_PROGRAM, "mini_program.jsonl", "jsonl"),
    _export_layout("tmall", Channel.TMALL, "tmall.csv", "csv"),
    _export_layout("douyin", Channel.DOUYIN, "douyin.parquet", "parquet"),
    _export_layout("meituan", Channel.MEITUAN, "meituan.csv", "csv"),
)

#: (prefix, digits) of order external ids by channel: POS0000000001, MP000000000001, 19-digit Tmall …
ORDER_ID_FORMATS: tuple[tuple[str, int], ...] = (("POS", 10), ("MP", 12), ("", 19), ("", 19), ("", 14))
EVENT_ID_PREFIX, EVENT_ID_DIGITS = "EV", 10
SHARE_ID_PREFIX, SHARE_ID_DIGITS = "S", 11
UNKNOWN_STORE_CODE = "ZZ999"

SKUS = Vocabulary.of(product_skus())
#: The start of a basket line up to its quantity, per SKU: one lookup instead of five pieces.
FIRST_LINE_HEADS = Vocabulary.of(
    [
        f'{{"sku":"{sku}","category":"{category}","qty":'
        for sku, category in zip(product_skus(), product_categories(), strict=True)
    ]
)
LATER_LINE_HEADS = Vocabulary.of(
    [
        f',{{"sku":"{sku}","category":"{category}","qty":'
        for sku, category in zip(product_skus(), product_categories(), strict=True)
    ]
)

#: Phone layouts: a digit index into the 11 digits, or -1 for the literal byte in the same position.
_PHONE_LAYOUTS: tuple[str, ...] = (
    "DDDDDDDDDDD", "DDD-DDDD-DDDD", "+86 DDD DDDD DDDD", "86 DDDDDDDDDDD", "+86DDDDDDDDDDD", "DDD DDDD DDDD",
)  # fmt: skip


def _phone_templates() -> tuple[I64, U8, I64]:
    width = max(len(layout) for layout in _PHONE_LAYOUTS)
    source = np.full((len(_PHONE_LAYOUTS), width), -1, dtype=np.int64)
    fill = np.zeros((len(_PHONE_LAYOUTS), width), dtype=np.uint8)
    for row, layout in enumerate(_PHONE_LAYOUTS):
        digit = 0
        for column, char in enumerate(layout):
            if char == "D":
                source[row, column] = digit
                digit += 1
            else:
                fill[row, column] = ord(char)
    return source, fill, np.asarray([len(layout) for layout in _PHONE_LAYOUTS], dtype=np.int64)


_PHONE_SOURCE, _PHONE_FILL, _PHONE_LENGTH = _phone_templates()


def phone(digits: U8, style: U8, too_short: Bools, bad_prefix: Bools, present: Bools) -> Piece:
    """Phones in their row's layout; damaged ones lose the last digit or get the invalid prefix 12x."""
    digits = digits.copy()
    digits[bad_prefix, 1] = ord("2")
    style = np.where(too_short, 0, style)
    source = np.take(_PHONE_SOURCE, style, axis=0)
    laid_out = np.take_along_axis(digits, np.maximum(source, 0), axis=1)
    matrix = np.where(source >= 0, laid_out, np.take(_PHONE_FILL, style, axis=0)).astype(np.uint8)
    length = np.take(_PHONE_LENGTH, style) - too_short.astype(np.int64)
    return Piece(matrix, 0, length).gated(present)


def timestamp(seconds: I64, epoch_day: int, offsets: I64 | None, present: Bools | None = None) -> Piece:
    """Local time ``YYYY-MM-DD HH:MM:SS``, or ISO 8601 ``YYYY-MM-DDTHH:MM:SS+08:00`` when offsets are given.

    ``seconds`` count from the period's first local midnight; ``offsets`` are UTC offsets in minutes of
    each local hour of the period.
    """
    local = seconds + epoch_day * SECONDS_PER_DAY
    day = (local // SECONDS_PER_DAY).astype("datetime64[D]")
    month_start = day.astype("datetime64[M]")
    clock = local % SECONDS_PER_DAY
    parts: list[tuple[I64, int]] = [
        (day.astype("datetime64[Y]").astype(np.int64) + 1970, 4),
        (month_start.astype(np.int64) % 12 + 1, 2),
        ((day - month_start).astype(np.int64) + 1, 2),
        (clock // 3600, 2),
        (clock // 60 % 60, 2),
        (clock % 60, 2),
    ]
    separators = "--T::" if offsets is not None else "-- ::"
    matrix = np.empty((seconds.size, 25 if offsets is not None else 19), dtype=np.uint8)
    position = 0
    for index, (values, digits) in enumerate(parts):
        matrix[:, position : position + digits] = digit_matrix(values, digits)
        position += digits
        if index < len(separators):
            matrix[:, position] = ord(separators[index])
            position += 1
    if offsets is not None:
        minutes = offsets[np.clip(seconds // 3600, 0, offsets.size - 1)]
        matrix[:, 19] = np.where(minutes < 0, ord("-"), ord("+"))
        matrix[:, 20:22] = digit_matrix(np.abs(minutes) // 60, 2)
        matrix[:, 22] = ord(":")
        matrix[:, 23:25] = digit_matrix(np.abs(minutes) % 60, 2)
    return fixed(matrix, present)


def order_id(channel: I64, number: I64, present: Bools | None = None) -> list[Piece]:
    """External order ids in each channel's own style."""
    pieces: list[Piece] = []
    for code, (prefix, digits) in enumerate(ORDER_ID_FORMATS):
        mine = channel == code if present is None else (channel == code) & present
        if prefix:
            pieces.append(literal(prefix, mine))
        pieces.append(zero_padded(number, digits, mine))
    return pieces


def event_id(number: I64) -> list[Piece]:
    """Event external ids: EV0000000001 …"""
    return [literal(EVENT_ID_PREFIX), zero_padded(number, EVENT_ID_DIGITS)]


def share_id(share: I64, present: Bools | None = None) -> list[Piece]:
    """Share ids from the share row: S00000000001 …"""
    return [literal(SHARE_ID_PREFIX, present), zero_padded(share + 1, SHARE_ID_DIGITS, present)]


def items(lines: Ints, sku: Ints, quantity: Ints, line_fen: Ints, broken: Bools) -> list[Piece]:
    """The basket as a JSON list of {sku, category, qty, amount}; a broken one lacks its closing bracket."""
    pieces = [literal("[")]
    for line in range(sku.shape[1]):
        present = line < lines
        pieces += [
            (LATER_LINE_HEADS if line else FIRST_LINE_HEADS).piece(sku[:, line], present),
            integer(quantity[:, line], 1, present),
            literal(',"amount":"', present),
            *yuan(line_fen[:, line], present),
            literal('"}', present),
        ]
    pieces.append(literal("]", ~broken))
    return pieces

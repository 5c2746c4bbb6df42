"""Malformed rows, about 1 % of every file: the kinds of damage real exports arrive with.

Each damaged row must be one the importer rejects (with its line number), so the importer's reject
count can be checked against the truth file. Register events and paid-plan orders are left intact so
the member and plan-holder counts stay exact.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from memberops.demo.catalogue import Channel, IdType, bit
from memberops.demo.events import REGISTER, EventTable
from memberops.demo.orders import OrderTable

U8 = npt.NDArray[np.uint8]

DEFECTS: tuple[str, ...] = (
    "", "phone_too_short", "phone_bad_prefix", "missing_time", "amount_not_a_number", "amount_negative",
    "items_not_json", "unknown_store",
)  # fmt: skip
(
    NONE,
    PHONE_TOO_SHORT,
    PHONE_BAD_PREFIX,
    MISSING_TIME,
    AMOUNT_TEXT,
    AMOUNT_NEGATIVE,
    ITEMS_NOT_JSON,
    UNKNOWN_STORE,
) = range(len(DEFECTS))
_PHONE = (PHONE_TOO_SHORT, PHONE_BAD_PREFIX)
_AMOUNT = (AMOUNT_TEXT, AMOUNT_NEGATIVE)
#: Damage each order file can carry (a column must exist to be damaged; JSONL goods stay valid JSON).
ORDER_FILE_DEFECTS: dict[Channel, tuple[int, ...]] = {
    Channel.POS: (*_PHONE, MISSING_TIME, *_AMOUNT, ITEMS_NOT_JSON, UNKNOWN_STORE),
    Channel.MINI_PROGRAM: (*_PHONE, MISSING_TIME, *_AMOUNT, UNKNOWN_STORE),
    Channel.TMALL: (*_PHONE, MISSING_TIME, *_AMOUNT, ITEMS_NOT_JSON),
    Channel.DOUYIN: (*_PHONE, MISSING_TIME, *_AMOUNT, ITEMS_NOT_JSON),
    Channel.MEITUAN: (MISSING_TIME, *_AMOUNT, ITEMS_NOT_JSON, UNKNOWN_STORE),
}
EVENT_FILE_DEFECTS: tuple[int, ...] = (PHONE_TOO_SHORT, PHONE_BAD_PREFIX, MISSING_TIME)


def damage_orders(rng: np.random.Generator, orders: OrderTable, share: float) -> OrderTable:
    """Mark about ``share`` of the fruit orders of every channel with one kind of damage."""
    defect = np.zeros(orders.size, dtype=np.uint8)
    chosen = ~orders.paid_plan & (rng.random(orders.size) < share)
    for channel, kinds in ORDER_FILE_DEFECTS.items():
        rows = np.flatnonzero(chosen & (orders.channel == channel))
        defect[rows] = np.asarray(kinds, dtype=np.uint8)[rng.integers(0, len(kinds), rows.size)]
    has_phone = (orders.mask & bit(IdType.PHONE)) != 0
    return replace(orders, defect=_applicable(defect, has_phone, orders.store >= 0))


def damage_events(rng: np.random.Generator, events: EventTable, share: float) -> EventTable:
    """Mark about ``share`` of the events (never a register event) with one kind of damage."""
    chosen = (events.kind != REGISTER) & (rng.random(events.size) < share)
    kinds = np.asarray(EVENT_FILE_DEFECTS, dtype=np.uint8)
    defect = np.where(chosen, kinds[rng.integers(0, kinds.size, events.size)], NONE).astype(np.uint8)
    has_phone = (events.mask & bit(IdType.PHONE)) != 0
    return replace(events, defect=_applicable(defect, has_phone, np.zeros(events.size, dtype=np.bool_)))


def _applicable(defect: U8, has_phone: npt.NDArray[np.bool_], has_store: npt.NDArray[np.bool_]) -> U8:
    """Damage a column the row does not have by dropping its time instead."""
    phone_damage = (defect == PHONE_TOO_SHORT) | (defect == PHONE_BAD_PREFIX)
    missing = (phone_damage & ~has_phone) | ((defect == UNKNOWN_STORE) & ~has_store)
    return np.where(missing, MISSING_TIME, defect).astype(np.uint8)

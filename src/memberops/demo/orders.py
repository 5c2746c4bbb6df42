"""Turn purchases into channel orders: channel, store, identifiers on the order, basket lines, refunds.

The identifiers an order carries follow what each channel's export really holds: the till types a phone
in whatever format or scans a card (or nothing, for a guest), the mini program knows the openid and
often the unionid, Tmall shows the phone only to a brand whose member bound the account, Meituan gives
only its own user id. That mess is what OneID has to untangle.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import numpy.typing as npt

from memberops.demo.catalogue import (
    CATEGORIES,
    CATEGORY_POPULARITY,
    PAID_PLANS,
    PRODUCTS,
    Channel,
    Field,
    IdType,
    bit,
    category_of_product,
    product_prices,
)
from memberops.demo.membership import Membership
from memberops.demo.ordering import stable_order
from memberops.demo.population import Population

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
Bools = npt.NDArray[np.bool_]

LINES = 3
#: Phone formats typed at the till: 13800138000, 138-0013-8000, +86 138 0013 8000, 86 13800138000,
#: +8613800138000, 138 0013 8000.
POS_PHONE_STYLES: tuple[float, ...] = (0.45, 0.15, 0.12, 0.08, 0.10, 0.10)
PLUS86_COMPACT_STYLE = 4
AFFORDABLE_FEN = 3_990  # the unit price up to which a SKU fits any basket


@dataclass(frozen=True)
class OrderParameters:
    """Shares that shape the orders, saved to params.json."""

    pos_guest: float = 0.10
    pos_phone_only: float = 0.35  # of identified member orders at the till
    pos_card_only: float = 0.30
    mini_program_unionid: float = 0.70
    mini_program_phone: float = 0.30
    mini_program_member_no: float = 0.50
    mini_program_store: float = 0.70  # delivered from or picked up at a store
    douyin_phone: float = 0.30
    home_store: float = 0.85
    line_count: tuple[float, float, float] = (0.55, 0.30, 0.15)
    full_refund: float = 0.014
    partial_refund: float = 0.006
    paid_plan_share: float = 0.05  # of members
    paid_plan_annual: float = 0.55
    paid_plan_renewal: float = 0.60


@dataclass(frozen=True)
class OrderTable:
    """One entry per order; ``sku``/``quantity``/``line_fen`` have LINES columns, -1/0 past ``lines``."""

    person: I64
    seconds: I64
    channel: I64
    store: I64
    mask: U8
    phone_style: U8
    amount_fen: I64
    refunded: Bools
    refund_fen: I64
    lines: I64
    sku: npt.NDArray[np.int16]
    quantity: npt.NDArray[np.int8]
    line_fen: npt.NDArray[np.int32]
    share: I64
    paid_plan: Bools
    external_number: I64
    defect: U8

    @property
    def size(self) -> int:
        """Number of orders."""
        return int(self.person.size)

    def take(self, rows: I64) -> OrderTable:
        """The orders at ``rows``, in that order."""
        return OrderTable(
            **{item.name: np.take(getattr(self, item.name), rows, axis=0) for item in fields(self)}
        )

    @staticmethod
    def concatenate(tables: list[OrderTable]) -> OrderTable:
        """Stack tables with the same columns."""
        columns = {
            item.name: np.concatenate([getattr(t, item.name) for t in tables]) for item in fields(OrderTable)
        }
        return OrderTable(**columns)


def draw_channels(rng: np.random.Generator, population: Population, person: I64) -> I64:
    """Each order's channel from its person's own channel mix."""
    draw = rng.random(person.size)
    channel = np.zeros(person.size, dtype=np.int64)
    for column in range(len(Channel) - 1):
        channel += draw > population.channel_cumulative[person, column]
    return channel


def draw_stores(
    rng: np.random.Generator,
    population: Population,
    person: I64,
    channel: I64,
    store_count: int,
    params: OrderParameters,
) -> I64:
    """Till and Meituan orders come from a store (mostly the home store); mini-program ones often do."""
    home = rng.random(person.size) < params.home_store
    store = np.where(home, population.home_store[person], rng.integers(0, store_count, size=person.size))
    with_store = (channel == Channel.POS) | (channel == Channel.MEITUAN)
    with_store |= (channel == Channel.MINI_PROGRAM) & (rng.random(person.size) < params.mini_program_store)
    return np.where(with_store, store, -1)


def identify(
    rng: np.random.Generator,
    person: I64,
    seconds: I64,
    channel: I64,
    membership: Membership,
    params: OrderParameters,
) -> tuple[U8, U8]:
    """The identifier mask each order carries and the phone format it is written in."""
    size = person.size
    member = membership.member_at(person, seconds)
    draw = rng.random((size, 4))
    phone, card = bit(IdType.PHONE), bit(IdType.MEMBER_NO)
    mask = np.zeros(size, dtype=np.uint8)
    rows = np.flatnonzero(channel == Channel.POS)
    first, second = draw[rows, 0], draw[rows, 1]
    identified = np.where(
        second < params.pos_phone_only,
        phone,
        np.where(second < params.pos_phone_only + params.pos_card_only, card, phone | card),
    )
    mask[rows] = np.where(first < params.pos_guest, 0, np.where(member[rows], identified, phone))
    rows = np.flatnonzero(channel == Channel.MINI_PROGRAM)
    mask[rows] = (
        bit(IdType.MP_OPENID)
        | np.where(draw[rows, 1] < params.mini_program_unionid, bit(IdType.UNIONID), 0)
        | np.where(draw[rows, 2] < params.mini_program_phone, phone, 0)
        | np.where(member[rows] & (draw[rows, 3] < params.mini_program_member_no), card, 0)
    )
    rows = np.flatnonzero(channel == Channel.TMALL)
    bound = member[rows] & (membership.register_field[person[rows]] == Field.TMALL)
    mask[rows] = bit(IdType.TMALL) | np.where(bound, phone, 0)
    rows = np.flatnonzero(channel == Channel.DOUYIN)
    mask[rows] = bit(IdType.DOUYIN) | np.where(draw[rows, 2] < params.douyin_phone, phone, 0)
    mask[channel == Channel.MEITUAN] = bit(IdType.MEITUAN)
    style = np.where(
        channel == Channel.POS,
        rng.choice(len(POS_PHONE_STYLES), size=size, p=POS_PHONE_STYLES),
        np.where((channel == Channel.DOUYIN) & (draw[:, 3] < 0.5), PLUS86_COMPACT_STYLE, 0),
    )
    return mask, style.astype(np.uint8)


def fill_baskets(
    rng: np.random.Generator, population: Population, person: I64, amount_fen: I64, params: OrderParameters
) -> tuple[I64, npt.NDArray[np.int16], npt.NDArray[np.int8], npt.NDArray[np.int32]]:
    """Pick 1-3 distinct fruit SKUs per order and split the amount over them exactly, in fen.

    Lines lean on the person's two favourite categories, so product-preference tags have a signal.
    """
    size = person.size
    lines = rng.choice(LINES, size=size, p=params.line_count) + 1
    lines = np.where(amount_fen < 2_000, 1, lines)
    category = _line_categories(rng, population, person)
    product_category = category_of_product()
    first = np.searchsorted(product_category, np.arange(len(CATEGORIES)))
    count = np.bincount(product_category, minlength=len(CATEGORIES))
    sku = first[category] + (rng.random((size, LINES)) * count[category]).astype(np.int64)
    prices = product_prices()
    cheap = np.flatnonzero(prices[: len(PRODUCTS)] <= AFFORDABLE_FEN)
    too_dear = prices[sku] > amount_fen[:, None] * 1.2  # no 298-yuan gift box in a 50-yuan basket
    sku = np.where(too_dear, cheap[rng.integers(0, cheap.size, size=(size, LINES))], sku)
    for column in range(1, LINES):
        for _ in range(column):  # a shift can clash with another earlier line: shift again
            for other in range(column):
                clash = sku[:, column] == sku[:, other]
                sku[:, column] = np.where(clash, (sku[:, column] + 1) % len(PRODUCTS), sku[:, column])
    present = np.arange(LINES)[None, :] < lines[:, None]
    unit_price = prices[sku]
    weight = np.where(present, unit_price * rng.uniform(0.6, 1.4, size=(size, LINES)), 0.0)
    share = weight / weight.sum(axis=1, keepdims=True)
    line_fen = np.where(present, 1 + np.floor((amount_fen - lines)[:, None] * share), 0).astype(np.int64)
    last = lines - 1
    line_fen[np.arange(size), last] += amount_fen - line_fen.sum(axis=1)
    quantity = np.where(present, np.clip(np.rint(line_fen / unit_price), 1, 9), 0)
    return (
        lines,
        np.where(present, sku, -1).astype(np.int16),
        quantity.astype(np.int8),
        line_fen.astype(np.int32),
    )


def _line_categories(rng: np.random.Generator, population: Population, person: I64) -> I64:
    """Favourite (half the lines), second favourite (a quarter) or an impulse category for each line."""
    draw = rng.random((person.size, LINES))
    favourite = np.take(population.favourite_categories, person, axis=0)
    category = np.where(draw < 0.5, favourite[:, [0]], favourite[:, [1]])
    impulse = draw >= 0.75
    popularity = np.cumsum(CATEGORY_POPULARITY) / sum(CATEGORY_POPULARITY)
    picked = np.searchsorted(popularity, rng.random(int(impulse.sum())), side="right")
    category[impulse] = np.minimum(picked, len(CATEGORIES) - 1)
    return category


def draw_refunds(rng: np.random.Generator, amount_fen: I64, params: OrderParameters) -> tuple[Bools, I64]:
    """About 2 % of orders are refunded: most in full (status refunded), some in part (status paid)."""
    draw = rng.random(amount_fen.size)
    refunded = draw < params.full_refund
    partial = (draw >= params.full_refund) & (draw < params.full_refund + params.partial_refund)
    part = np.floor(amount_fen * rng.uniform(0.1, 0.9, size=amount_fen.size)).astype(np.int64)
    refund_fen = np.where(partial, np.clip(part, 1, amount_fen - 1), 0)
    return refunded, refund_fen


def paid_plan_orders(
    rng: np.random.Generator,
    population: Population,
    membership: Membership,
    horizon_seconds: int,
    params: OrderParameters,
) -> OrderTable:
    """Paid plans bought and renewed in the mini program (PLAN-HALF 99 yuan, PLAN-ANNUAL 168 yuan).

    Renewals come around expiry, a few early and most after it has lapsed, until the holder stops.
    """
    members = np.flatnonzero(membership.is_member() & population.wechat)
    chance = min(1.0, params.paid_plan_share * population.members / max(members.size, 1))
    holder = members[rng.random(members.size) < chance]
    when = membership.register_seconds[holder] + (rng.exponential(60.0, holder.size) * 86_400).astype(
        np.int64
    )
    plan = (rng.random(holder.size) < params.paid_plan_annual).astype(np.int64)
    people: list[I64] = [np.zeros(0, dtype=np.int64)]
    times: list[I64] = [np.zeros(0, dtype=np.int64)]
    plans: list[I64] = [np.zeros(0, dtype=np.int64)]
    while holder.size:
        keep = (when < horizon_seconds) & (when < membership.cancel_seconds[holder])
        holder, when, plan = holder[keep], when[keep], plan[keep]
        people.append(holder)
        times.append(when)
        plans.append(plan)
        renew = rng.random(holder.size) < params.paid_plan_renewal
        holder, when, plan = holder[renew], when[renew], plan[renew]
        term = np.asarray([days for _, _, days in PAID_PLANS])[plan] * 86_400
        early = rng.random(holder.size) < 0.35
        shift = np.where(early, -rng.uniform(0, 14, holder.size), rng.uniform(0, 45, holder.size))
        when = when + term + (shift * 86_400).astype(np.int64)
    return _plan_table(rng, np.concatenate(people), np.concatenate(times), np.concatenate(plans))


def _plan_table(rng: np.random.Generator, person: I64, seconds: I64, plan: I64) -> OrderTable:
    size = person.size
    price = np.asarray([fen for _, fen, _ in PAID_PLANS], dtype=np.int64)[plan]
    mask = (
        bit(IdType.MP_OPENID)
        | bit(IdType.UNIONID)
        | bit(IdType.MEMBER_NO)
        | np.where(rng.random(size) < 0.5, bit(IdType.PHONE), 0)
    )
    sku = np.full((size, LINES), -1, dtype=np.int16)
    sku[:, 0] = len(PRODUCTS) + plan
    quantity = np.zeros((size, LINES), dtype=np.int8)
    quantity[:, 0] = 1
    line_fen = np.zeros((size, LINES), dtype=np.int32)
    line_fen[:, 0] = price
    return OrderTable(
        person=person,
        seconds=seconds,
        channel=np.full(size, Channel.MINI_PROGRAM, dtype=np.int64),
        store=np.full(size, -1, dtype=np.int64),
        mask=mask.astype(np.uint8),
        phone_style=np.zeros(size, dtype=np.uint8),
        amount_fen=price,
        refunded=np.zeros(size, dtype=np.bool_),
        refund_fen=np.zeros(size, dtype=np.int64),
        lines=np.ones(size, dtype=np.int64),
        sku=sku,
        quantity=quantity,
        line_fen=line_fen,
        share=np.full(size, -1, dtype=np.int64),
        paid_plan=np.ones(size, dtype=np.bool_),
        external_number=np.zeros(size, dtype=np.int64),
        defect=np.zeros(size, dtype=np.uint8),
    )


def number_orders(rng: np.random.Generator, orders: OrderTable) -> tuple[OrderTable, I64]:
    """Give each order its channel-style unique external number, in time order within its channel.

    Returns the table (rows unmoved: reordering ten million rows costs more than writing them) and
    the file order: row numbers sorted by channel, then time, then person.
    """
    file_order = stable_order(orders.channel, orders.seconds, orders.person)
    channel = orders.channel[file_order]
    starts = np.searchsorted(channel, np.arange(len(Channel)))
    serial = np.empty(orders.size, dtype=np.int64)
    serial[file_order] = np.arange(orders.size, dtype=np.int64) - starts[channel] + 1
    spread = np.asarray([1, 1, 1000, 1000, 100], dtype=np.int64)[orders.channel]
    base = np.asarray([0, 0, 2 * 10**18, 69 * 10**17, 8 * 10**13], dtype=np.int64)[orders.channel]
    noise = (rng.random(orders.size) * spread).astype(np.int64)
    return replace(orders, external_number=base + serial * spread + noise), file_order

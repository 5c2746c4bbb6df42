"""Generate the demo brand "鲜果时光 FreshHours": files to import plus the truth to check against.

``generate_demo`` is deterministic for (members, seed, end_date, time_zone, years): every stage draws
from its own child of ``SeedSequence(seed)``, nothing depends on the clock or on set order, so the same
arguments give byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from memberops.demo import formats
from memberops.demo.calendar import (
    SECONDS_PER_DAY,
    Period,
    Seasonality,
    day_factors,
    raw_day_factors,
    spring_festivals,
    utc_offset_minutes,
)
from memberops.demo.catalogue import BRAND_NAME, Channel, Stores, make_stores, store_count
from memberops.demo.defects import DEFECTS, damage_events, damage_orders
from memberops.demo.events import EventParameters, EventTable, make_events
from memberops.demo.membership import NEVER, Membership, MembershipParameters, decide_membership
from memberops.demo.orders import (
    OrderParameters,
    OrderTable,
    draw_channels,
    draw_refunds,
    draw_stores,
    fill_baskets,
    identify,
    number_orders,
    paid_plan_orders,
)
from memberops.demo.population import (
    BUYER,
    GROUP_NAMES,
    MEMBER,
    Population,
    PopulationParameters,
    make_population,
)
from memberops.demo.purchases import PurchaseHistory, PurchaseParameters, arrival_seconds, simulate_purchases
from memberops.demo.referrals import ReferralParameters, Shares, make_shares, refer_orders
from memberops.demo.text import to_arrow
from memberops.demo.truth import components
from memberops.demo.writers import Context, TruthWriter, write_events, write_orders, write_stores

I64 = npt.NDArray[np.int64]
Progress = Callable[[str, int, int], None]

MALFORMED_SHARE = 0.01
CHUNK_ROWS = 250_000
_STREAMS: tuple[str, ...] = (
    "stores",
    "population",
    "arrivals",
    "purchases",
    "channels",
    "membership",
    "identifiers",
    "baskets",
    "refunds",
    "shares",
    "referrals",
    "paid_plans",
    "numbering",
    "order_defects",
    "events",
    "event_defects",
)


@dataclass(frozen=True)
class DemoFile:
    """One file to import: what it holds, where, with which orders profile, and how many rows."""

    kind: Literal["stores", "orders", "events"]
    path: Path
    profile: str | None
    rows: int


@dataclass(frozen=True)
class DemoManifest:
    """What was generated; ``files`` are in import order: stores, events, then orders."""

    directory: Path
    files: list[DemoFile]
    truth_path: Path
    params_path: Path
    persons: int
    members: int
    orders: int
    events: int
    malformed_rows: int
    truth_persons_path: Path


@dataclass(frozen=True)
class _Parameters:
    seasonality: Seasonality = field(default_factory=Seasonality)
    population: PopulationParameters = field(default_factory=PopulationParameters)
    purchases: PurchaseParameters = field(default_factory=PurchaseParameters)
    membership: MembershipParameters = field(default_factory=MembershipParameters)
    orders: OrderParameters = field(default_factory=OrderParameters)
    referrals: ReferralParameters = field(default_factory=ReferralParameters)
    events: EventParameters = field(default_factory=EventParameters)


@dataclass(frozen=True)
class _World:
    """Everything simulated, before it is written."""

    population: Population
    history: PurchaseHistory
    membership: Membership
    shares: Shares
    orders: OrderTable
    file_order: I64  # order rows by channel, then time: the order they are written in
    events: EventTable
    arrivals: I64


@dataclass(frozen=True)
class _Request:
    """The arguments that decide the generated data, recorded in params.json."""

    seed: int
    members: int
    years: int
    time_zone: str
    period: Period


def generate_demo(
    out_dir: Path,
    *,
    members: int = 20_000,
    seed: int = 7,
    end_date: date,
    time_zone: str = "Asia/Shanghai",
    years: int = 3,
    progress: Progress | None = None,
) -> DemoManifest:
    """Simulate the brand over ``years`` years ending on ``end_date`` and write the files into ``out_dir``."""
    if members < 100:
        raise ValueError("the demo needs at least 100 members")
    period = Period.ending(end_date, years)
    spring_festivals(period)  # fails early on a period the calendar does not know
    offsets = utc_offset_minutes(period, time_zone)
    params = _Parameters()
    streams = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    rngs = {name: np.random.default_rng(stream) for name, stream in zip(_STREAMS, streams, strict=True)}
    stores = make_stores(rngs["stores"], store_count(members))
    world = _simulate(rngs, members, stores, period, params, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = Context(out_dir, world.population, stores, period.epoch_day, offsets, CHUNK_ROWS, progress)
    files = _write_files(context, world)
    _write_truth_persons(out_dir / "truth_persons.parquet", world, stores.codes, period, offsets)
    malformed = int(np.count_nonzero(world.orders.defect) + np.count_nonzero(world.events.defect))
    params_path = out_dir / "params.json"
    request = _Request(seed, members, years, time_zone, period)
    _write_params(params_path, request, world, params, len(stores.codes), files)
    return DemoManifest(
        directory=out_dir,
        files=files,
        truth_path=out_dir / "truth.parquet",
        params_path=params_path,
        persons=world.population.size,
        members=int(np.count_nonzero(world.membership.is_member())),
        orders=world.orders.size,
        events=world.events.size,
        malformed_rows=malformed,
        truth_persons_path=out_dir / "truth_persons.parquet",
    )


def _report(progress: Progress | None, stage: str) -> None:
    if progress is not None:
        progress(stage, 1, 1)


def _simulate(
    rngs: dict[str, np.random.Generator],
    members: int,
    stores: Stores,
    period: Period,
    params: _Parameters,
    progress: Progress | None,
) -> _World:
    """People, purchases, membership, orders and events, all in memory as numpy columns."""
    factors = day_factors(period, params.seasonality)
    horizon = period.days * SECONDS_PER_DAY
    population = make_population(rngs["population"], members, stores, params.population)
    arrivals = arrival_seconds(rngs["arrivals"], population.size, factors, params.purchases.growth_per_year)
    group = population.group
    buys = (group == BUYER) | (
        (group == MEMBER)
        & (rngs["purchases"].random(population.size) >= params.purchases.members_without_purchase)
    )
    buyers = np.flatnonzero(buys)
    _report(progress, "population")
    history = simulate_purchases(
        rngs["purchases"], buyers, arrivals[buyers], factors, params.purchases, progress
    )
    orders, file_order, membership, shares = _orders(
        rngs, population, history, arrivals, len(stores.codes), horizon, params
    )
    _report(progress, "orders")
    events = make_events(
        rngs["events"], population, membership, orders, shares, arrivals, horizon, params.events
    )
    events = damage_events(rngs["event_defects"], events, MALFORMED_SHARE)
    _report(progress, "events")
    return _World(population, history, membership, shares, orders, file_order, events, arrivals)


def _orders(
    rngs: dict[str, np.random.Generator],
    population: Population,
    history: PurchaseHistory,
    arrivals: I64,
    stores: int,
    horizon: int,
    params: _Parameters,
) -> tuple[OrderTable, I64, Membership, Shares]:
    """Dress every purchase as a channel order, add paid plans, number and damage them."""
    person, seconds = history.person, history.seconds
    channel = draw_channels(rngs["channels"], population, person)
    store = draw_stores(rngs["channels"], population, person, channel, stores, params.orders)
    membership = decide_membership(
        rngs["membership"], population, history, channel, store, arrivals, horizon, params.membership
    )
    mask, style = identify(rngs["identifiers"], person, seconds, channel, membership, params.orders)
    lines, sku, quantity, line_fen = fill_baskets(
        rngs["baskets"], population, person, history.value_fen, params.orders
    )
    refunded, refund_fen = draw_refunds(rngs["refunds"], history.value_fen, params.orders)
    shares = make_shares(rngs["shares"], population, membership, person, seconds, horizon, params.referrals)
    first = np.ones(person.size, dtype=np.bool_)
    first[1:] = person[1:] != person[:-1]
    share = refer_orders(rngs["referrals"], shares, person, seconds, channel, first, params.referrals)
    fruit = OrderTable(
        person=person,
        seconds=seconds,
        channel=channel,
        store=store,
        mask=mask,
        phone_style=style,
        amount_fen=history.value_fen,
        refunded=refunded,
        refund_fen=refund_fen,
        lines=lines,
        sku=sku,
        quantity=quantity,
        line_fen=line_fen,
        share=share,
        paid_plan=np.zeros(person.size, dtype=np.bool_),
        external_number=np.zeros(person.size, dtype=np.int64),
        defect=np.zeros(person.size, dtype=np.uint8),
    )
    plans = paid_plan_orders(rngs["paid_plans"], population, membership, horizon, params.orders)
    orders, file_order = number_orders(rngs["numbering"], OrderTable.concatenate([fruit, plans]))
    return damage_orders(rngs["order_defects"], orders, MALFORMED_SHARE), file_order, membership, shares


def _write_files(context: Context, world: _World) -> list[DemoFile]:
    """Write stores, events and each channel's orders, and the truth rows in the same order."""
    directory = context.directory
    orders, events = world.orders, world.events
    persons = np.concatenate([events.person, orders.person])
    masks = np.concatenate([events.mask, orders.mask])
    usable = np.concatenate([events.defect == 0, orders.defect == 0])
    component = components(persons, masks, usable, world.population.size)
    _report(context.progress, "truth")
    files = [DemoFile("stores", directory / "stores.csv", None, write_stores(context))]
    truth = TruthWriter(directory / "truth.parquet")
    try:
        rows = write_events(context, events, orders, component[: events.size], truth)
        files.append(DemoFile("events", directory / "events.jsonl", None, rows))
        order_component = component[events.size :]
        channel_in_file_order = orders.channel[world.file_order]
        for profile in formats.PROFILES:
            mine = world.file_order[channel_in_file_order == profile.channel]
            rows = write_orders(context, profile, orders, mine, order_component, truth)
            files.append(DemoFile("orders", directory / profile.file_name, profile.name, rows))
    finally:
        truth.close()
    return files


def _write_truth_persons(
    path: Path, world: _World, store_codes: tuple[str, ...], period: Period, offsets: I64
) -> None:
    """One row per person: group, membership dates, order counts, and the true λ, p, ν of buyers."""
    population, history, membership = world.population, world.history, world.membership
    size = population.size
    rate = np.full(size, np.nan)
    dropout = np.full(size, np.nan)
    spend_rate = np.full(size, np.nan)
    alive = np.zeros(size, dtype=np.bool_)
    first_purchase = np.full(size, -1, dtype=np.int64)
    rate[history.buyers] = history.rate
    dropout[history.buyers] = history.dropout
    spend_rate[history.buyers] = history.spend_rate
    alive[history.buyers] = history.alive
    first_purchase[history.buyers] = history.first_seconds
    fruit = ~world.orders.paid_plan
    registered = membership.is_member()
    cancelled = membership.cancel_seconds != NEVER
    table = pa.table(
        {
            "person": pa.array(np.arange(size, dtype=np.int64)),
            "group": pa.array(np.asarray(GROUP_NAMES, dtype=object)[population.group], pa.string()),
            "member": pa.array(registered),
            "wechat": pa.array(population.wechat),
            "home_store": pa.array(np.asarray(store_codes, dtype=object)[population.home_store], pa.string()),
            "registered_at": _time_column(membership.register_seconds, registered, period, offsets),
            "cancelled_at": _time_column(membership.cancel_seconds, cancelled, period, offsets),
            "first_purchase_at": _time_column(first_purchase, first_purchase >= 0, period, offsets),
            "orders": pa.array(np.bincount(world.orders.person[fruit], minlength=size).astype(np.int64)),
            "paid_plan_orders": pa.array(
                np.bincount(world.orders.person[~fruit], minlength=size).astype(np.int64)
            ),
            "purchase_rate": pa.array(rate, mask=np.isnan(rate)),
            "dropout_probability": pa.array(dropout, mask=np.isnan(dropout)),
            "spend_rate": pa.array(spend_rate, mask=np.isnan(spend_rate)),
            "alive_at_end": pa.array(alive, mask=np.isnan(rate)),
        }
    )
    pq.write_table(table, path)


def _time_column(seconds: I64, present: npt.NDArray[np.bool_], period: Period, offsets: I64) -> pa.Array:
    safe = np.where(present, seconds, 0)
    return to_arrow([formats.timestamp(safe, period.epoch_day, offsets)], seconds.size, present)


def _write_params(
    path: Path, request: _Request, world: _World, params: _Parameters, stores: int, files: list[DemoFile]
) -> None:
    """Every parameter and count, so CLV models and analyses can be checked against the truth."""
    orders, events, period = world.orders, world.events, request.period
    raw = raw_day_factors(period, params.seasonality)
    document: dict[str, Any] = {
        "brand": BRAND_NAME,
        "seed": request.seed,
        "members_requested": request.members,
        "start_date": period.start.isoformat(),
        "end_date": period.end.isoformat(),
        "years": request.years,
        "days": period.days,
        "time_zone": request.time_zone,
        "counts": _counts(world, stores),
        "files": [{"kind": f.kind, "file": f.path.name, "profile": f.profile, "rows": f.rows} for f in files],
        "purchase_process": {
            "model": "BG/NBD purchases with Gamma-Gamma spend, seasonal thinning",
            "time_unit": "day",
            "money_unit": "yuan",
            "purchase_rate": "lambda ~ Gamma(shape=r, rate=alpha) per day, times the seasonality factor",
            "dropout": "after each repeat purchase, p ~ Beta(a, b)",
            "spend": "order value ~ Gamma(shape=p_spend, rate=nu), nu ~ Gamma(shape=q, rate=gamma)",
            **params.purchases.as_dict(),
        },
        "seasonality": {
            **params.seasonality.as_dict(),
            "normalised_by_mean_raw_factor": float(raw.mean()),
            "spring_festivals": [day.isoformat() for day in spring_festivals(period)],
        },
        "population": asdict(params.population),
        "membership": asdict(params.membership),
        "orders": asdict(params.orders),
        "referrals": asdict(params.referrals),
        "events": asdict(params.events),
        "malformed_share": MALFORMED_SHARE,
        "malformed_kinds": {
            name: int(np.count_nonzero(orders.defect == code) + np.count_nonzero(events.defect == code))
            for code, name in enumerate(DEFECTS)
            if code
        },
    }
    path.write_text(
        json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _counts(world: _World, stores: int) -> dict[str, int]:
    population, orders, events = world.population, world.orders, world.events
    fruit = ~orders.paid_plan
    return {
        "persons": population.size,
        "members": int(np.count_nonzero(world.membership.is_member())),
        "connected_non_members": population.connected,
        "non_member_buyers": population.buyers,
        "buyers": int(world.history.buyers.size),
        "stores": stores,
        "orders": orders.size,
        "fruit_orders": int(np.count_nonzero(fruit)),
        "paid_plan_orders": int(np.count_nonzero(~fruit)),
        "refunded_orders": int(np.count_nonzero(orders.refunded)),
        "partially_refunded_orders": int(np.count_nonzero(orders.refund_fen > 0)),
        "referred_orders": int(np.count_nonzero(orders.share >= 0)),
        "shares": world.shares.size,
        "events": events.size,
        "malformed_orders": int(np.count_nonzero(orders.defect)),
        "malformed_events": int(np.count_nonzero(events.defect)),
        **{
            f"orders_{code}": int(np.count_nonzero(orders.channel == channel))
            for channel, code in zip(
                Channel, ("pos", "mini_program", "tmall", "douyin", "meituan"), strict=True
            )
        },
    }

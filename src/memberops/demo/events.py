"""The event stream: joining, consent, following, group chats, visits, shares and reviews.

Register events carry two or more identifiers at once (phone with card number, openid and unionid, or
a Tmall buyer id), and so do official-account follows (openid with unionid): these are the records that
let OneID see one person across channels. Most other events carry a single channel identifier.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import numpy.typing as npt

from memberops.demo.calendar import SECONDS_PER_DAY
from memberops.demo.catalogue import Channel, Field, IdType, bit
from memberops.demo.membership import NEVER, Membership
from memberops.demo.ordering import stable_order
from memberops.demo.orders import POS_PHONE_STYLES, OrderTable
from memberops.demo.population import CONNECTED, MEMBER, Population
from memberops.demo.referrals import Shares
from memberops.ingest.records import CONSENT_CHANNEL_TYPES

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
I8 = npt.NDArray[np.int8]
I16 = npt.NDArray[np.int16]
I32 = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]

REGISTER, CANCEL, FOLLOW, UNFOLLOW, JOIN_GROUP, LEAVE_GROUP, VISIT, SHARE, REVIEW, CONSENT = range(10)
CONSENT_CHANNELS = CONSENT_CHANNEL_TYPES
CANCEL_REASONS: tuple[str, ...] = ("moved_away", "too_many_messages", "privacy", "not_interested")
PAGES: tuple[str, ...] = ("home", "category", "product", "member_center", "coupons", "checkout")
GROUPS_PER_STORE = 3
RATINGS: tuple[float, ...] = (0.03, 0.04, 0.08, 0.25, 0.60)  # 1 to 5 stars

_CARD_AND_PHONE = bit(IdType.PHONE) | bit(IdType.MEMBER_NO)
_REGISTER_MASKS = {
    Field.POS: _CARD_AND_PHONE,
    Field.MINI_PROGRAM: _CARD_AND_PHONE | bit(IdType.MP_OPENID) | bit(IdType.UNIONID),
    Field.TMALL: _CARD_AND_PHONE | bit(IdType.TMALL),
}
_REVIEW_FIELDS = np.asarray(
    [Field.MINI_PROGRAM, Field.MINI_PROGRAM, Field.TMALL, Field.DOUYIN, Field.MEITUAN]
)
_REVIEW_MASKS = np.asarray(
    [bit(IdType.MP_OPENID), bit(IdType.MP_OPENID), bit(IdType.TMALL), bit(IdType.DOUYIN), bit(IdType.MEITUAN)]
)


@dataclass(frozen=True)
class EventParameters:
    """Shares that shape the event stream, saved to params.json."""

    sms_consent: float = 0.75
    wecom_consent: float = 0.25
    subscription_consent: float = 0.60  # of members who joined in the mini program
    consent_withdrawn: float = 0.06
    official_account_members: float = 0.40
    official_account_buyers: float = 0.10
    official_account_connected: float = 0.60
    unfollow: float = 0.15
    group_members: float = 0.20
    group_connected: float = 0.40
    leave_group: float = 0.10
    live_room_douyin_buyers: float = 0.40
    live_room_others: float = 0.03
    live_room_connected: float = 0.30
    live_room_visits: float = 3.0
    visit_before_mini_program_order: float = 0.50
    mini_program_browsing_visits: float = 1.5
    connected_mini_program_visitors: float = 0.25
    review: float = 0.06


@dataclass(frozen=True)
class EventTable:
    """One entry per event; attribute columns are -1 where the type has no such attribute."""

    person: I64
    seconds: I64
    kind: I8
    field: I8
    mask: U8
    phone_style: U8
    store: I16
    group: I32
    share: I64
    sku: I16
    rating: I8
    order: I64  # row in the numbered order table, for reviews
    consent_channel: I8
    granted: Bools
    page: I8
    reason: I8
    target: I8
    external_number: I64
    defect: U8

    @property
    def size(self) -> int:
        """Number of events."""
        return int(self.person.size)

    def take(self, rows: I64) -> EventTable:
        """The events at ``rows``, in that order."""
        return EventTable(
            **{item.name: np.take(getattr(self, item.name), rows, axis=0) for item in fields(self)}
        )


_COLUMN_TYPES: dict[str, type[np.generic]] = {
    "person": np.int64, "seconds": np.int64, "kind": np.int8, "field": np.int8, "mask": np.uint8,
    "phone_style": np.uint8, "store": np.int16, "group": np.int32, "share": np.int64, "sku": np.int16,
    "rating": np.int8, "order": np.int64, "consent_channel": np.int8, "granted": np.bool_, "page": np.int8,
    "reason": np.int8, "target": np.int8, "external_number": np.int64, "defect": np.uint8,
}  # fmt: skip
_COLUMN_DEFAULTS: dict[str, object] = {
    "mask": 0, "phone_style": 0, "granted": False, "defect": 0, "external_number": 0,
}  # fmt: skip


def _events(
    person: I64, seconds: I64, kind: int, field: I64 | int, mask: I64 | int, **extra: object
) -> EventTable:
    """A block of events of one type; unspecified attributes get their empty value (-1 for indexes)."""
    given = {"person": person, "seconds": seconds, "kind": kind, "field": field, "mask": mask, **extra}
    columns = {
        name: np.broadcast_to(
            np.asarray(given.get(name, _COLUMN_DEFAULTS.get(name, -1)), dtype=dtype), (person.size,)
        ).copy()
        for name, dtype in _COLUMN_TYPES.items()
    }
    return EventTable(**columns)


def _later(rng: np.random.Generator, start: I64, mean_days: float) -> I64:
    later: I64 = start + (rng.exponential(mean_days, start.size) * SECONDS_PER_DAY).astype(np.int64)
    return later


def _until_end(table: EventTable, horizon_seconds: int) -> EventTable:
    return table.take(np.flatnonzero((table.seconds >= 0) & (table.seconds < horizon_seconds)))


def make_events(
    rng: np.random.Generator,
    population: Population,
    membership: Membership,
    orders: OrderTable,
    shares: Shares,
    arrivals: I64,
    horizon_seconds: int,
    params: EventParameters,
) -> EventTable:
    """Every event of the period, sorted by time and numbered."""
    first_contact = _first_contact(population, membership, orders, arrivals)
    official, chat, live = _connected_roles(rng, population, params)
    blocks = [
        *_membership_events(rng, population, membership, params),
        *_official_account_events(rng, population, official, first_contact, params),
        *_group_events(rng, population, chat, first_contact, params),
        *_live_room_events(rng, population, orders, live, first_contact, params),
        *_mini_program_visits(rng, population, membership, orders, first_contact, horizon_seconds, params),
        _share_events(rng, shares),
        _review_events(rng, population, orders, params),
    ]
    table = EventTable(
        **{item.name: np.concatenate([getattr(b, item.name) for b in blocks]) for item in fields(EventTable)}
    )
    table = _until_end(table, horizon_seconds)
    table = table.take(stable_order(table.seconds, table.person, table.kind))
    return replace(table, external_number=np.arange(1, table.size + 1, dtype=np.int64))


def _first_contact(population: Population, membership: Membership, orders: OrderTable, arrivals: I64) -> I64:
    """When each person first met the brand: registration, first order, or arrival for the connected."""
    first_order = np.full(population.size, NEVER, dtype=np.int64)
    np.minimum.at(first_order, orders.person, orders.seconds)
    contact = np.minimum(membership.register_seconds, first_order)
    return np.where(contact == NEVER, arrivals, contact)


def _membership_events(
    rng: np.random.Generator, population: Population, membership: Membership, params: EventParameters
) -> list[EventTable]:
    """Register, consent given at joining (some withdrawn later) and cancellations."""
    members = np.flatnonzero(membership.is_member())
    field = membership.register_field[members]
    joined = membership.register_seconds[members]
    masks = np.select([field == key for key in _REGISTER_MASKS], list(_REGISTER_MASKS.values()))
    style = np.where(
        field == Field.POS, rng.choice(len(POS_PHONE_STYLES), members.size, p=POS_PHONE_STYLES), 0
    )
    register = _events(
        members, joined, REGISTER, field, masks, phone_style=style, store=membership.register_store[members]
    )
    blocks = [register]
    draw = rng.random((members.size, 4))
    wechat = population.wechat[members]
    for column, channel, chance in (
        (0, CONSENT_CHANNELS.index("sms"), np.full(members.size, params.sms_consent)),
        (1, CONSENT_CHANNELS.index("wecom"), np.where(wechat, params.wecom_consent, 0.0)),
        (
            2,
            CONSENT_CHANNELS.index("subscription"),
            np.where(field == Field.MINI_PROGRAM, params.subscription_consent, 0.0),
        ),
    ):
        granted = np.flatnonzero(draw[:, column] < chance)
        delay = rng.integers(5, 120, granted.size)
        blocks.append(
            _events(
                members[granted],
                joined[granted] + delay,
                CONSENT,
                field[granted],
                _CARD_AND_PHONE,
                consent_channel=channel,
                granted=True,
            )
        )
        if channel == CONSENT_CHANNELS.index("sms"):
            withdrawn = granted[draw[granted, 3] < params.consent_withdrawn]
            blocks.append(
                _events(
                    members[withdrawn],
                    _later(rng, joined[withdrawn], 300.0),
                    CONSENT,
                    field[withdrawn],
                    _CARD_AND_PHONE,
                    consent_channel=channel,
                    granted=False,
                )
            )
    leaving = members[membership.cancel_seconds[members] != NEVER]
    blocks.append(
        _events(
            leaving,
            membership.cancel_seconds[leaving],
            CANCEL,
            membership.register_field[leaving],
            _CARD_AND_PHONE,
            reason=rng.integers(0, len(CANCEL_REASONS), leaving.size),
        )
    )
    return blocks


def _connected_roles(
    rng: np.random.Generator, population: Population, params: EventParameters
) -> tuple[Bools, ...]:
    """Official-account follower, group member, live-room follower: every connected person is one."""
    group = population.group
    wechat = population.wechat
    draw = rng.random((population.size, 3))
    connected = group == CONNECTED
    official = connected & wechat & (draw[:, 0] < params.official_account_connected)
    chat = connected & wechat & (draw[:, 1] < params.group_connected)
    live = connected & (draw[:, 2] < params.live_room_connected)
    nothing = connected & ~(official | chat | live)
    return official | (nothing & wechat), chat, live | (nothing & ~wechat)


def _official_account_events(
    rng: np.random.Generator,
    population: Population,
    official: Bools,
    first_contact: I64,
    params: EventParameters,
) -> list[EventTable]:
    """Follow (and some unfollow) the official account, with the OA openid and the unionid."""
    group = population.group
    chance = np.where(group == MEMBER, params.official_account_members, params.official_account_buyers)
    official = official | (group != CONNECTED) & population.wechat & (rng.random(population.size) < chance)
    people = np.flatnonzero(official)
    followed = np.where(
        group[people] == CONNECTED, first_contact[people], _later(rng, first_contact[people], 45.0)
    )
    mask = bit(IdType.OA_OPENID) | bit(IdType.UNIONID)
    leaving = rng.random(people.size) < params.unfollow
    return [
        _events(people, followed, FOLLOW, Field.OFFICIAL_ACCOUNT, mask),
        _events(
            people[leaving], _later(rng, followed[leaving], 240.0), UNFOLLOW, Field.OFFICIAL_ACCOUNT, mask
        ),
    ]


def _group_events(
    rng: np.random.Generator, population: Population, chat: Bools, first_contact: I64, params: EventParameters
) -> list[EventTable]:
    """Join (and some leave) a WeCom group chat of the home store, known by unionid only."""
    group = population.group
    chat = chat | (
        (group == MEMBER) & population.wechat & (rng.random(population.size) < params.group_members)
    )
    people = np.flatnonzero(chat)
    joined = np.where(
        group[people] == CONNECTED, first_contact[people], _later(rng, first_contact[people], 60.0)
    )
    group_id = population.home_store[people] * GROUPS_PER_STORE + rng.integers(
        0, GROUPS_PER_STORE, people.size
    )
    leaving = rng.random(people.size) < params.leave_group
    mask = bit(IdType.UNIONID)
    return [
        _events(people, joined, JOIN_GROUP, Field.GROUP_CHAT, mask, group=group_id),
        _events(
            people[leaving],
            _later(rng, joined[leaving], 180.0),
            LEAVE_GROUP,
            Field.GROUP_CHAT,
            mask,
            group=group_id[leaving],
        ),
    ]


def _live_room_events(
    rng: np.random.Generator,
    population: Population,
    orders: OrderTable,
    live: Bools,
    first_contact: I64,
    params: EventParameters,
) -> list[EventTable]:
    """Follow the Douyin live room (Douyin buyer id), watch it now and then, and some unfollow."""
    douyin_orders = np.bincount(orders.person[orders.channel == Channel.DOUYIN], minlength=population.size)
    chance = np.where(douyin_orders > 0, params.live_room_douyin_buyers, params.live_room_others)
    live = live | ((population.group != CONNECTED) & (rng.random(population.size) < chance))
    people = np.flatnonzero(live)
    followed = np.where(
        population.group[people] == CONNECTED, first_contact[people], _later(rng, first_contact[people], 30.0)
    )
    viewer = np.repeat(np.arange(people.size), rng.poisson(params.live_room_visits, people.size))
    viewed = followed[viewer] + _later(rng, np.zeros(viewer.size, dtype=np.int64), 120.0)
    leaving = rng.random(people.size) < params.unfollow
    mask = bit(IdType.DOUYIN)
    return [
        _events(people, followed, FOLLOW, Field.LIVE_ROOM, mask),
        _events(people[viewer], viewed, VISIT, Field.LIVE_ROOM, mask),
        _events(people[leaving], _later(rng, followed[leaving], 200.0), UNFOLLOW, Field.LIVE_ROOM, mask),
    ]


def _mini_program_visits(
    rng: np.random.Generator,
    population: Population,
    membership: Membership,
    orders: OrderTable,
    first_contact: I64,
    horizon_seconds: int,
    params: EventParameters,
) -> list[EventTable]:
    """Mini-program sessions (openid): just before many of its orders, and browsing at other times."""
    in_app = np.flatnonzero(orders.channel == Channel.MINI_PROGRAM)
    before = in_app[rng.random(in_app.size) < params.visit_before_mini_program_order]
    lead = rng.integers(60, 1_800, before.size)
    users = np.zeros(population.size, dtype=np.bool_)
    users[orders.person[in_app]] = True
    users |= membership.register_field == Field.MINI_PROGRAM
    users |= (
        (population.group == CONNECTED)
        & population.wechat
        & (rng.random(population.size) < params.connected_mini_program_visitors)
    )
    people = np.flatnonzero(users)
    browser = np.repeat(people, rng.poisson(params.mini_program_browsing_visits, people.size))
    start = first_contact[browser]
    browsed = start + (rng.random(browser.size) * np.maximum(horizon_seconds - start, 1)).astype(np.int64)
    mask = bit(IdType.MP_OPENID)
    return [
        _events(
            orders.person[before],
            orders.seconds[before] - lead,
            VISIT,
            Field.MINI_PROGRAM,
            mask,
            page=rng.integers(0, len(PAGES), before.size),
        ),
        _events(
            browser, browsed, VISIT, Field.MINI_PROGRAM, mask, page=rng.integers(0, len(PAGES), browser.size)
        ),
    ]


def _share_events(rng: np.random.Generator, shares: Shares) -> EventTable:
    """Shares in the mini program (openid, often with the unionid)."""
    mask = bit(IdType.MP_OPENID) | np.where(rng.random(shares.size) < 0.5, bit(IdType.UNIONID), 0)
    return _events(
        shares.sharer,
        shares.seconds,
        SHARE,
        Field.MINI_PROGRAM,
        mask,
        share=np.arange(shares.size),
        target=shares.target,
        sku=shares.sku,
    )


def _review_events(
    rng: np.random.Generator, population: Population, orders: OrderTable, params: EventParameters
) -> EventTable:
    """Reviews of a bought product a few hours to days after the order, mostly 4 or 5 stars.

    Till and mini-program orders are reviewed in the mini program (so only by WeChat users); the
    marketplaces' orders on the marketplace, under its buyer id.
    """
    in_app = (orders.channel == Channel.POS) | (orders.channel == Channel.MINI_PROGRAM)
    eligible = ~orders.paid_plan & ~orders.refunded & (population.wechat[orders.person] | ~in_app)
    rows = np.flatnonzero(eligible & (rng.random(orders.size) < params.review))
    delay = rng.integers(2 * 3_600, 72 * 3_600, rows.size)
    channel = orders.channel[rows]
    return _events(
        orders.person[rows],
        orders.seconds[rows] + delay,
        REVIEW,
        _REVIEW_FIELDS[channel],
        _REVIEW_MASKS[channel],
        sku=orders.sku[rows, 0],
        rating=rng.choice(5, size=rows.size, p=RATINGS) + 1,
        order=rows,
    )

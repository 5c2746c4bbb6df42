"""The people behind the demo: members, connected non-members and non-member buyers, and their identifiers.

Every identifier is drawn without replacement, so no two people ever share one: any link OneID makes
between two different people is a mistake, which is what lets the accuracy metric score it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from memberops.demo.catalogue import (
    CATEGORY_POPULARITY,
    CHANNEL_SHARES,
    MOBILE_PREFIXES,
    Channel,
    IdType,
    Stores,
)

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

MEMBER, CONNECTED, BUYER = 0, 1, 2
GROUP_NAMES: tuple[str, ...] = ("member", "connected", "buyer")

_BASE64URL = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8
)
_LOWER_ALNUM = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


@dataclass(frozen=True)
class PopulationParameters:
    """Shares that shape the population, saved to params.json."""

    connected_share: float = 0.30  # of members: reachable, never register, never buy
    buyer_share: float = 0.20  # of members: buy, never register
    wechat_share: float = 0.92  # people with a WeChat unionid for the brand
    mix_concentration: float = 2.5  # Dirichlet total of a person's channel mix: low = loyal to one channel


@dataclass(frozen=True)
class Population:
    """One entry per person; person ids are row numbers: members, then connected, then buyers."""

    members: int
    connected: int
    buyers: int
    wechat: Bools
    identifiers: tuple[U8, ...]  # by IdType: a fixed-width byte matrix, one row per person
    channel_cumulative: F64  # (persons, channels) cumulative channel mix
    home_store: I64
    favourite_categories: I64  # (persons, 2)

    @property
    def size(self) -> int:
        """Number of people."""
        return self.members + self.connected + self.buyers

    @property
    def group(self) -> npt.NDArray[np.int8]:
        """MEMBER, CONNECTED or BUYER for every person."""
        sizes = [self.members, self.connected, self.buyers]
        return np.repeat(np.asarray([MEMBER, CONNECTED, BUYER], dtype=np.int8), sizes)

    def identifier(self, kind: IdType, people: I64) -> U8:
        """The identifier matrix rows of ``kind`` for ``people``."""
        gathered: U8 = np.take(self.identifiers[kind], people, axis=0)  # 5x faster than fancy indexing
        return gathered


def make_population(
    rng: np.random.Generator, members: int, stores: Stores, params: PopulationParameters
) -> Population:
    """Draw the people, their identifiers, channel habits, home store and favourite fruit."""
    connected = round(members * params.connected_share)
    buyers = round(members * params.buyer_share)
    size = members + connected + buyers
    wechat = rng.random(size) < params.wechat_share
    mix = rng.gamma(np.asarray(CHANNEL_SHARES) * params.mix_concentration, size=(size, len(CHANNEL_SHARES)))
    mix[~wechat, Channel.MINI_PROGRAM] = 0.0
    mix += 1e-12  # keeps a row with every weight drawn as zero well defined
    cumulative = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
    cumulative[:, -1] = 1.0
    popularity = np.asarray(CATEGORY_POPULARITY) / sum(CATEGORY_POPULARITY)
    favourites = rng.choice(len(popularity), size=(size, 2), p=popularity)
    return Population(
        members=members,
        connected=connected,
        buyers=buyers,
        wechat=wechat,
        identifiers=make_identifiers(rng, size),
        channel_cumulative=cumulative,
        home_store=rng.choice(len(stores.codes), size=size, p=stores.traffic),
        favourite_categories=favourites,
    )


def make_identifiers(rng: np.random.Generator, size: int) -> tuple[U8, ...]:
    """Every identifier kind for every person, unique per kind (their use decides what records carry)."""
    return (
        phone_digits(rng, size),
        _numbered(rng, size, b"FH", 10),
        _coded(rng, size, b"o6_bm", 23, _BASE64URL),  # unionid
        _coded(rng, size, b"oMpQ1", 23, _BASE64URL),  # mini-program openid
        _coded(rng, size, b"oFhOa", 23, _BASE64URL),  # official-account openid
        _coded(rng, size, b"AAH", 21, _BASE64URL),  # Tmall buyer open uid
        _coded(rng, size, b"dy", 16, _LOWER_ALNUM),  # Douyin buyer id
        _numbered(rng, size, b"", 10, lowest=10**9),  # Meituan user id
    )


def phone_digits(rng: np.random.Generator, size: int) -> U8:
    """Unique valid mainland mobiles as 11 ASCII digits, drawn without replacement."""
    numbers = rng.choice(len(MOBILE_PREFIXES) * 10**8, size=size, replace=False).astype(np.int64)
    prefixes = np.asarray(MOBILE_PREFIXES, dtype=np.int64)[numbers // 10**8]
    return _digits(prefixes * 10**8 + numbers % 10**8, 11)


def _numbered(rng: np.random.Generator, size: int, prefix: bytes, width: int, lowest: int = 0) -> U8:
    """Unique numbers of ``width`` digits at or above ``lowest``, after a fixed prefix."""
    numbers = lowest + rng.choice(10**width - lowest, size=size, replace=False).astype(np.int64)
    return _with_prefix(prefix, _digits(numbers, width))


def _coded(rng: np.random.Generator, size: int, prefix: bytes, width: int, alphabet: U8) -> U8:
    """Random-looking codes, unique because the first five characters encode a distinct number."""
    base = len(alphabet)
    unique_chars = 5
    numbers = rng.choice(base**unique_chars, size=size, replace=False).astype(np.int64)
    powers = base ** np.arange(unique_chars - 1, -1, -1, dtype=np.int64)
    head = alphabet[(numbers[:, None] // powers) % base]
    tail = alphabet[rng.integers(0, base, size=(size, width - unique_chars))]
    return _with_prefix(prefix, np.concatenate([head, tail], axis=1))


def _digits(numbers: I64, width: int) -> U8:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits: U8 = _DIGITS[(numbers[:, None] // powers) % 10]
    return digits


def _with_prefix(prefix: bytes, body: U8) -> U8:
    if not prefix:
        return body
    head = np.broadcast_to(np.frombuffer(prefix, dtype=np.uint8), (body.shape[0], len(prefix)))
    return np.concatenate([head, body], axis=1)

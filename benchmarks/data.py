"""Deterministic benchmark data: a canonical orders CSV and what it holds.

The CSV is what a brand would hand to ``memberops import orders``: N orders from about N/8 persons,
phones written four different ways, WeChat openids/unionids on mini-program orders, marketplace
buyer ids, guest orders, 1–3 items a order whose amounts add up to the order amount, a few whole
refunds, and one row in a thousand with a malformed phone (so the reject path is exercised too).

The meta file says how many orders, lines and refunds are valid, so a benchmark can check that
an import stored exactly them. Everything is vectorised with numpy and pyarrow, so a million
orders take seconds, and it is seeded, so two runs (and two machines) measure the same file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

DATA_DIR = Path(__file__).resolve().parent / ".data"
#: Bump when the generator changes, so a stale cached file is never reused.
GENERATOR_VERSION = 2
SEED = 20261126

SOURCES = ("pos", "mini_program", "tmall", "douyin", "meituan")
SOURCE_SHARE = (0.40, 0.25, 0.15, 0.12, 0.08)
POS, MINI, TMALL, DOUYIN, MEITUAN = range(5)
#: Mobile prefixes that phonenumbers accepts as valid Chinese mobiles.
MOBILE_PREFIXES = (130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 155, 156, 157, 158, 159, 186)
CATEGORIES = ("coffee", "tea", "bakery", "snack", "merch")
MINI_APP_ID = "wxa1b2c3d4e5f6a7b8"
ORDERS_PER_PERSON = 8
INVALID_SHARE = 0.001
REFUND_SHARE = 0.015
#: 2025-01-01T00:00:00+08:00, and the span of paid_at (about 22 months).
EPOCH_UTC = int(datetime(2024, 12, 31, 16, 0, tzinfo=UTC).timestamp())
SPAN_SECONDS = 670 * 86_400
LOCAL_OFFSET_SECONDS = 8 * 3600


@dataclass(frozen=True)
class OrderData:
    """Paths of one generated data set and what it holds (see ``meta``)."""

    orders: int
    csv_path: Path
    meta: dict[str, Any]


def _paths(n: int, directory: Path) -> tuple[Path, Path]:
    stem = directory / f"orders-{n}-v{GENERATOR_VERSION}"
    return stem.with_suffix(".csv"), Path(f"{stem}.meta.json")


def ensure_orders(n: int, directory: Path = DATA_DIR) -> OrderData:
    """Return the data set of ``n`` orders, generating it only if it is not there yet."""
    csv_path, meta_path = _paths(n, directory)
    if not (csv_path.exists() and meta_path.exists()):
        generate_orders(n, directory)
    meta = json.loads(meta_path.read_text())
    return OrderData(n, csv_path, meta)


def _s(values: np.ndarray[Any, Any] | pa.Array) -> pa.Array:
    """Return ``values`` as a pyarrow string array."""
    array = values if isinstance(values, pa.Array) else pa.array(values)
    return pc.cast(array, pa.string())


def _pad(values: np.ndarray[Any, Any], width: int) -> pa.Array:
    return pc.utf8_lpad(_s(values), width=width, padding="0")


def _cat(*parts: pa.Array | str) -> pa.Array:
    """Concatenate string arrays and literals element-wise."""
    return pc.binary_join_element_wise(*parts, "")


def _where(mask: np.ndarray[Any, Any], values: pa.Array, otherwise: pa.Array | str | None = None) -> pa.Array:
    fallback = pa.scalar(otherwise, pa.string()) if not isinstance(otherwise, pa.Array) else otherwise
    return pc.if_else(pa.array(mask), values, fallback)


def _yuan(fen: np.ndarray[Any, Any]) -> pa.Array:
    """Format integer fen as a yuan string with two decimals (3680 -> "36.80")."""
    return _cat(_s(fen // 100), ".", _pad(fen % 100, 2))


def phones(person: np.ndarray[Any, Any], style: np.ndarray[Any, Any]) -> pa.Array:
    """Each person's unique mobile, written in one of four common ways chosen per order."""
    prefixes = np.array(MOBILE_PREFIXES)
    suffix = (person.astype(np.int64) * 48_271 + 12_345_678) % 100_000_000  # a bijection below 1e8
    head = _s(prefixes[person % len(prefixes)])
    middle = _pad(suffix // 10_000, 4)
    tail = _pad(suffix % 10_000, 4)
    plain = _cat(head, middle, tail)
    dashed = _cat(head, "-", middle, "-", tail)
    spaced = _cat("+86 ", head, " ", middle, " ", tail)
    country = _cat("86", head, middle, tail)
    out = _where(style == 0, plain, dashed)
    out = _where(style == 2, spaced, out)
    return _where(style == 3, country, out)


def generate_orders(n: int, directory: Path = DATA_DIR) -> OrderData:
    """Write the CSV and the meta file for ``n`` orders; return them."""
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, meta_path = _paths(n, directory)
    rng = np.random.default_rng(SEED)
    persons = max(n // ORDERS_PER_PERSON, 1)

    # Persons: who has which identifier (a person's identifiers are stable across orders).
    has_phone = rng.random(persons) < 0.85
    has_unionid = rng.random(persons) < 0.35
    has_member_no = rng.random(persons) < 0.25
    # Activity is skewed: a few regulars, many one-off buyers.
    weight = rng.lognormal(0.0, 1.0, persons)
    person = rng.choice(persons, size=n, p=weight / weight.sum())
    source = rng.choice(len(SOURCES), size=n, p=SOURCE_SHARE)
    roll = rng.random((n, 4))

    p_phone = has_phone[person]
    phone_mask = np.select(
        [source == POS, source == MINI, (source == TMALL) | (source == DOUYIN)],
        [p_phone & (roll[:, 0] < 0.80), p_phone & (roll[:, 0] < 0.40), p_phone & (roll[:, 0] < 0.25)],
        default=False,
    )
    member_mask = (source == POS) & has_member_no[person] & (roll[:, 1] < 0.5)
    openid_mask = source == MINI
    unionid_mask = openid_mask & has_unionid[person]
    platform_mask = source >= TMALL
    invalid = roll[:, 2] < INVALID_SHARE
    refunded = (roll[:, 3] < REFUND_SHARE) & ~invalid

    phone = _where(phone_mask, phones(person, rng.integers(0, 4, n)))
    phone = _where(invalid, _cat("138-0013-", _pad(person % 1000, 3)), phone)  # 10 digits: rejected
    person_tag = _pad(person, 9)
    unionid = _where(unionid_mask, _cat("oUbnch", person_tag, "Zq7"))
    openid = _where(openid_mask, _cat("oXbnch", person_tag, "Kp2"))
    app_id = _where(openid_mask, pa.array(np.full(n, MINI_APP_ID)))
    platform_head = pa.array(np.array(["", "", "t", "dy", "mt"])[source])
    platform_user_id = _where(platform_mask, _cat(platform_head, person_tag))
    member_no = _where(member_mask, _cat("M", person_tag))

    # Items: 1-3 lines, their totals add up to the order amount.
    count = rng.integers(1, 4, n)
    line_fen = rng.integers(80, 600, (n, 3)) * 10
    line_qty = rng.integers(1, 3, (n, 3))
    line_sku = rng.integers(0, 500, (n, 3))
    present = np.arange(3)[None, :] < count[:, None]
    amount_fen = (line_fen * present).sum(axis=1)
    items_json: pa.Array = pa.array(np.full(n, "["))
    for j in range(3):
        item = _cat(
            '{"sku": "SKU',
            _pad(line_sku[:, j], 4),
            '", "category": "',
            pa.array(np.array(CATEGORIES)[line_sku[:, j] % len(CATEGORIES)]),
            '", "qty": ',
            _s(line_qty[:, j]),
            ', "amount": "',
            _yuan(line_fen[:, j]),
            '"}',
        )
        item = _cat(", ", item) if j else item
        items_json = _cat(items_json, _where(present[:, j], item, ""))
    items_json = _cat(items_json, "]")

    # Paid times in chronological order, as exports usually are, written with +08:00.
    paid_epoch = np.sort(EPOCH_UTC + rng.integers(0, SPAN_SECONDS, n))
    local = pa.array(paid_epoch + LOCAL_OFFSET_SECONDS, pa.timestamp("s"))
    paid_text = _cat(pc.strftime(local, format="%Y-%m-%dT%H:%M:%S"), "+08:00")
    external_id = _cat("B", _pad(np.arange(n), 10))
    source_text = pa.array(np.array(SOURCES)[source])

    table = pa.table(
        {
            "source": source_text,
            "external_id": external_id,
            "paid_at": paid_text,
            "amount": _yuan(amount_fen),
            "phone": phone,
            "unionid": unionid,
            "openid": openid,
            "app_id": app_id,
            "platform_user_id": platform_user_id,
            "member_no": member_no,
            "status": _where(refunded, pa.array(np.full(n, "refunded")), "paid"),
            "items": items_json,
        }
    )
    pacsv.write_csv(table, csv_path, pacsv.WriteOptions(quoting_style="needed"))

    valid = ~invalid
    meta = {
        "generator_version": GENERATOR_VERSION,
        "seed": SEED,
        "orders": n,
        "valid_orders": int(valid.sum()),
        "invalid_orders": int(invalid.sum()),
        "valid_lines": int(count[valid].sum()),
        "refunds": int(refunded.sum()),
        "persons_drawn": int(np.unique(person).size),
        "guest_orders": int(
            (valid & ~phone_mask & ~member_mask & ~openid_mask & ~unionid_mask & ~platform_mask).sum()
        ),
        "csv_bytes": csv_path.stat().st_size,
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return OrderData(n, csv_path, meta)


#: Members register before the first order (2024-12-20, Shanghai time), in the mini program.
REGISTERED_AT = "2024-12-20T10:00:00+08:00"
MEMBER_SHARE = 0.70


def ensure_members(n: int, directory: Path = DATA_DIR) -> Path:
    """Return the register events of the persons behind the ``n``-order file (made if missing).

    About 70 % of the persons who have a phone register with it before their first order, so
    their orders (those that carry the phone, or an identifier OneID links to it) earn points
    once a programme is applied; the rest stay non-members, as in a real chain.
    """
    path = directory / f"members-{n}-v{GENERATOR_VERSION}.csv"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)  # the same draws as generate_orders, in the same order
    persons = max(n // ORDERS_PER_PERSON, 1)
    has_phone = rng.random(persons) < 0.85
    joins = np.flatnonzero(has_phone & (np.random.default_rng(SEED + 1).random(persons) < MEMBER_SHARE))
    table = pa.table(
        {
            "type": pa.array(np.full(joins.size, "register")),
            "occurred_at": pa.array(np.full(joins.size, REGISTERED_AT)),
            "field": pa.array(np.full(joins.size, "mini_program")),
            "external_id": _cat("REG", _pad(joins, 9)),
            "phone": phones(joins, np.zeros(joins.size, dtype=np.int64)),
        }
    )
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
    return path

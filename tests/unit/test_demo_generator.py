"""The demo generator writes what docs/import-formats.md promises, reproducibly, with a truthful truth file.

The checks read the files back with plain csv/json/pyarrow and phonenumbers, independently of the
generator's own code, the way an importer would.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import phonenumbers
import pyarrow.parquet as pq
import pytest

from memberops.demo.generator import DemoManifest, generate_demo

END = date(2026, 10, 31)
MEMBERS = 2_000

PROFILES: dict[str, dict[str, Any]] = {
    "pos": {"id": "单号", "paid_at": "支付时间", "amount": "实收金额", "store": "门店编码", "phone": "会员手机",
            "member_no": "会员卡号", "status": "状态", "words": {"已支付": "paid", "已退款": "refunded"},
            "refund": "退款金额", "items": "商品明细"},
    "mini_program": {"id": "order_no", "paid_at": "pay_time", "amount": "total_amount", "store": "store_code",
                     "phone": "phone", "member_no": "member_no", "unionid": "unionid", "openid": "openid",
                     "status": "status", "words": {"SUCCESS": "paid", "REFUND": "refunded"},
                     "refund": "refund_amount", "items": "goods", "share_id": "share_id"},
    "tmall": {"id": "订单编号", "paid_at": "订单付款时间", "amount": "实付金额", "phone": "手机号",
              "platform_user_id": "买家ID", "status": "订单状态", "words": {"交易成功": "paid", "交易关闭": "refunded"},
              "refund": "退款金额", "items": "商品明细"},
    "douyin": {"id": "order_id", "paid_at": "pay_time", "amount": "pay_amount", "phone": "phone",
               "platform_user_id": "buyer_id", "status": "order_status",
               "words": {"completed": "paid", "refunded": "refunded"}, "refund": "refund_amount", "items": "items"},
    "meituan": {"id": "订单号", "paid_at": "下单时间", "amount": "订单金额", "store": "门店编码",
                "platform_user_id": "用户ID", "status": "订单状态", "words": {"已完成": "paid", "已退款": "refunded"},
                "refund": "退款金额", "items": "商品明细"},
}  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    return generate_demo(tmp_path_factory.mktemp("demo"), members=MEMBERS, seed=7, end_date=END)


def _rows(path: Path) -> list[dict[str, Any]]:
    """Data rows of a CSV, JSONL or Parquet file, with None for an empty or missing cell."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            return [{key: value or None for key, value in row.items()} for row in csv.DictReader(handle)]
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return pq.read_table(path).to_pylist()


def _first_line(path: Path) -> int:
    return 2 if path.suffix == ".csv" else 1


def _phone(raw: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _money(raw: Any) -> Decimal | None:
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    if value < 0 or value != value.quantize(Decimal("0.01")):
        return None
    return value


def _time(raw: str | None, with_offset: bool) -> datetime | None:
    if raw is None:
        return None
    if with_offset:
        parsed = datetime.fromisoformat(raw)
        return parsed if parsed.tzinfo is not None else None
    return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S")


@dataclass
class Record:
    """A record as an importer would see it: accepted or not, and its normalised identifier keys."""

    kind: str
    source: str
    external_id: str
    line: int
    accepted: bool
    keys: list[str] = field(default_factory=list)
    paid_at: datetime | None = None
    amount: Decimal | None = None
    status: str | None = None
    refund: Decimal | None = None


def _order_record(profile: str, row: dict[str, Any], line: int, stores: set[str]) -> Record:
    spec = PROFILES[profile]
    record = Record("order", profile, row[spec["id"]], line, True)
    record.paid_at = _time(row.get(spec["paid_at"]), profile == "mini_program")
    record.amount = _money(row[spec["amount"]])
    record.status = spec["words"].get(row[spec["status"]])
    if row.get(spec["refund"]) is not None:
        record.refund = _money(row[spec["refund"]])
    items_ok = True
    raw_items = row[spec["items"]]
    try:
        lines = raw_items if isinstance(raw_items, list) else json.loads(raw_items)
        items_ok = (
            record.amount is not None and sum(Decimal(item["amount"]) for item in lines) == record.amount
        )
    except (json.JSONDecodeError, TypeError, KeyError):
        items_ok = False
    store = row.get(spec.get("store", ""))
    phone = row.get(spec.get("phone", ""))
    normalised = _phone(phone) if phone is not None else None
    record.accepted = (
        record.paid_at is not None
        and record.amount is not None
        and record.status is not None
        and items_ok
        and (store is None or store in stores)
        and (phone is None or normalised is not None)
    )
    if normalised:
        record.keys.append(f"phone:{normalised}")
    for name in ("member_no", "unionid"):
        if row.get(spec.get(name, "")):
            record.keys.append(f"{name}:{row[spec[name]]}")
    if row.get(spec.get("openid", "")):
        record.keys.append(f"openid:{profile}:{row[spec['openid']]}")
    if row.get(spec.get("platform_user_id", "")):
        record.keys.append(f"platform:{profile}:{row[spec['platform_user_id']]}")
    return record


def _event_record(row: dict[str, Any], line: int) -> Record:
    record = Record("event", row["field"], row["external_id"], line, True)
    record.paid_at = _time(row.get("occurred_at"), True)
    normalised = _phone(row["phone"]) if "phone" in row else None
    record.accepted = record.paid_at is not None and ("phone" not in row or normalised is not None)
    namespace = row.get("app_id", row["field"])
    if normalised:
        record.keys.append(f"phone:{normalised}")
    for name in ("member_no", "unionid"):
        if name in row:
            record.keys.append(f"{name}:{row[name]}")
    if "openid" in row:
        record.keys.append(f"openid:{namespace}:{row['openid']}")
    if "platform_user_id" in row:
        record.keys.append(f"platform:{namespace}:{row['platform_user_id']}")
    return record


@pytest.fixture(scope="module")
def records(demo: DemoManifest) -> list[Record]:
    """Every order and event record of the demo, in truth-file order (events, then orders by profile)."""
    stores = {row["code"] for row in _rows(demo.directory / "stores.csv")}
    result: list[Record] = []
    for item in demo.files:
        first = _first_line(item.path)
        if item.kind == "events":
            result += [_event_record(row, first + n) for n, row in enumerate(_rows(item.path))]
        elif item.kind == "orders":
            assert item.profile is not None
            result += [
                _order_record(item.profile, row, first + n, stores) for n, row in enumerate(_rows(item.path))
            ]
    return result


@pytest.fixture(scope="module")
def truth(demo: DemoManifest) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(demo.truth_path).to_pylist()
    return rows


def _digests(directory: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.iterdir())}


def test_same_arguments_give_identical_bytes_and_another_seed_differs(
    demo: DemoManifest, tmp_path: Path
) -> None:
    again = generate_demo(tmp_path / "again", members=MEMBERS, seed=7, end_date=END)
    other = generate_demo(tmp_path / "other", members=MEMBERS, seed=8, end_date=END)

    first, second, third = _digests(demo.directory), _digests(again.directory), _digests(other.directory)

    assert first == second
    assert sorted(first) == sorted(third)
    assert all(first[name] != third[name] for name in first if name != "stores.csv")


def test_manifest_lists_files_in_import_order_with_their_row_counts(demo: DemoManifest) -> None:
    kinds = [item.kind for item in demo.files]
    profiles = [item.profile for item in demo.files if item.kind == "orders"]

    assert kinds == ["stores", "events", "orders", "orders", "orders", "orders", "orders"]
    assert profiles == ["pos", "mini_program", "tmall", "douyin", "meituan"]
    assert [item.path.name for item in demo.files[2:]] == [
        "pos.csv", "mini_program.jsonl", "tmall.csv", "douyin.parquet", "meituan.csv",
    ]  # fmt: skip
    for item in demo.files:
        assert item.rows == len(_rows(item.path))
    assert demo.orders == sum(item.rows for item in demo.files if item.kind == "orders")
    assert demo.events == sum(item.rows for item in demo.files if item.kind == "events")
    assert demo.members == MEMBERS
    assert demo.persons == MEMBERS + round(MEMBERS * 0.3) + round(MEMBERS * 0.2)


def test_stores_are_forty_of_four_types_in_several_cities(demo: DemoManifest) -> None:
    stores = _rows(demo.directory / "stores.csv")

    assert len(stores) == 40
    assert {row["store_type"] for row in stores} == {"community", "mall", "flagship", "transit"}
    assert len({row["city"] for row in stores}) >= 6
    assert len({row["code"] for row in stores}) == len({row["name"] for row in stores}) == 40
    assert stores[0]["code"] == "SH001"


def test_every_record_has_a_truth_row_in_file_order(
    demo: DemoManifest, records: list[Record], truth: list[dict[str, Any]]
) -> None:
    assert len(truth) == len(records) == demo.orders + demo.events
    assert [(t["source"], t["external_id"], t["line"]) for t in truth] == [
        (r.source, r.external_id, r.line) for r in records
    ]
    assert Counter(t["kind"] for t in truth) == {"order": demo.orders, "event": demo.events}


def test_external_ids_are_unique_per_source(truth: list[dict[str, Any]]) -> None:
    keys = Counter((row["kind"], row["source"], row["external_id"]) for row in truth)

    assert max(keys.values()) == 1


def test_exactly_the_malformed_rows_are_rejected_and_they_are_about_one_percent(
    demo: DemoManifest, records: list[Record], truth: list[dict[str, Any]]
) -> None:
    rejected = [not record.accepted for record in records]
    malformed = [row["malformed"] for row in truth]

    assert rejected == malformed
    assert sum(malformed) == demo.malformed_rows
    assert 0.007 < demo.malformed_rows / len(records) < 0.013
    per_file = Counter(row["file"] for row in truth if row["malformed"])
    assert set(per_file) == {"events.jsonl", "pos.csv", "mini_program.jsonl", "tmall.csv", "douyin.parquet",
                             "meituan.csv"}  # fmt: skip


def test_phones_are_valid_mainland_mobiles_except_on_malformed_rows(demo: DemoManifest) -> None:
    seen: set[str] = set()
    for item in demo.files[1:]:
        column = "phone" if item.kind == "events" else PROFILES[str(item.profile)].get("phone")
        if column is None:
            continue
        for row in _rows(item.path):
            if row.get(column):
                normalised = _phone(row[column])
                if normalised is not None:
                    seen.add(normalised)
                    assert normalised.startswith("+861")
    assert len(seen) > MEMBERS


def test_each_phone_belongs_to_one_person(records: list[Record], truth: list[dict[str, Any]]) -> None:
    owner: dict[str, int] = {}
    for record, row in zip(records, truth, strict=True):
        for key in record.keys:
            assert owner.setdefault(key, row["person"]) == row["person"], key


def test_items_sum_to_the_amount_on_every_well_formed_order(records: list[Record]) -> None:
    orders = [record for record in records if record.kind == "order" and record.accepted]

    assert len(orders) > 10 * MEMBERS * 0.8
    assert all(record.amount is not None and record.amount > 0 for record in orders)


def test_about_two_percent_of_orders_are_refunded_some_in_part(records: list[Record]) -> None:
    orders = [record for record in records if record.kind == "order" and record.accepted]
    full = sum(record.status == "refunded" for record in orders)
    partial = sum(record.status == "paid" and record.refund is not None for record in orders)

    assert 0.015 < (full + partial) / len(orders) < 0.025
    assert 0 < partial < full
    for record in orders:
        if record.refund is not None and record.status == "paid":
            assert record.amount is not None and 0 < record.refund < record.amount


def test_average_buyer_orders_about_ten_times_at_fruit_prices(
    records: list[Record], truth: list[dict[str, Any]]
) -> None:
    orders = [(r, t) for r, t in zip(records, truth, strict=True) if t["kind"] == "order" and r.accepted]
    buyers = {t["person"] for _, t in orders}
    amounts = [r.amount for r, _ in orders if r.amount is not None]

    assert 8 < len(orders) / len(buyers) < 12
    assert Decimal(60) < sum(amounts, Decimal(0)) / len(amounts) < Decimal(95)


def test_orders_span_the_period_with_promotion_peaks(records: list[Record]) -> None:
    times = [r.paid_at for r in records if r.kind == "order" and r.accepted and r.paid_at is not None]
    days = Counter(moment.date() for moment in times)
    year = END.year - 1

    assert min(days) >= date(END.year - 3, END.month, END.day)
    assert max(days) <= END
    double11 = sum(days[date(year, 11, d)] for d in range(1, 12)) / 11
    september = sum(days[date(year, 9, d)] for d in range(1, 31)) / 30
    june = sum(days[date(year, 6, d)] for d in range(1, 19)) / 18
    july = sum(days[date(year, 7, d)] for d in range(1, 32)) / 31
    assert double11 > 1.3 * september
    assert june > 1.2 * july


def test_channel_shares_follow_the_brand_mix(demo: DemoManifest) -> None:
    rows = {item.profile: item.rows for item in demo.files if item.kind == "orders"}
    share = {profile: count / demo.orders for profile, count in rows.items()}

    assert 0.40 < share["pos"] < 0.60
    assert 0.17 < share["mini_program"] < 0.33
    for profile in ("tmall", "douyin", "meituan"):
        assert 0.03 < share[profile] < 0.15


def test_about_a_tenth_of_till_orders_are_guests(records: list[Record]) -> None:
    till = [
        record for record in records if record.kind == "order" and record.source == "pos" and record.accepted
    ]
    guests = sum(not record.keys for record in till)

    assert 0.07 < guests / len(till) < 0.13


def test_register_events_tie_channels_together(demo: DemoManifest) -> None:
    events = _rows(demo.directory / "events.jsonl")
    registers = [row for row in events if row["type"] == "register"]
    by_field = Counter(row["field"] for row in registers)

    assert len(registers) == MEMBERS
    assert set(by_field) == {"pos", "mini_program", "tmall"}
    for row in registers:
        assert "phone" in row and "member_no" in row
        if row["field"] == "mini_program":
            assert "openid" in row and "unionid" in row
        if row["field"] == "tmall":
            assert "platform_user_id" in row
    types = Counter(row["type"] for row in events)
    assert {"follow", "unfollow", "join_group", "leave_group", "visit", "share", "review", "consent",
            "cancel_membership"} <= set(types)  # fmt: skip
    assert 0 < types["cancel_membership"] < 0.03 * MEMBERS


def test_referred_orders_carry_an_earlier_share_by_someone_else(
    demo: DemoManifest, truth: list[dict[str, Any]]
) -> None:
    events = _rows(demo.directory / "events.jsonl")
    event_truth = {row["external_id"]: row["person"] for row in truth if row["kind"] == "event"}
    shares = {
        row["attributes"]["share_id"]: (row.get("occurred_at"), event_truth[row["external_id"]])
        for row in events
        if row["type"] == "share"
    }
    order_truth = {row["external_id"]: row["person"] for row in truth if row["source"] == "mini_program"}
    referred = [row for row in _rows(demo.directory / "mini_program.jsonl") if "share_id" in row]

    assert len(referred) > 50
    for row in referred:
        shared_at, sharer = shares[row["share_id"]]
        assert sharer != order_truth[row["order_no"]]
        if "pay_time" in row and shared_at is not None:
            assert datetime.fromisoformat(shared_at) < datetime.fromisoformat(row["pay_time"])


def test_paid_plans_are_mini_program_orders_of_the_two_plans(demo: DemoManifest) -> None:
    plans = Counter()
    for row in _rows(demo.directory / "mini_program.jsonl"):
        for item in row["goods"]:
            if item["category"] == "paid_plan":
                plans[(item["sku"], item["amount"])] += 1

    assert set(plans) == {("PLAN-HALF", "99.00"), ("PLAN-ANNUAL", "168.00")}
    assert sum(plans.values()) > 0.05 * MEMBERS


def test_truth_components_match_a_naive_identifier_union(
    records: list[Record], truth: list[dict[str, Any]]
) -> None:
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for record in records:
        if record.accepted and record.keys:
            for key in record.keys[1:]:
                parent[root(key)] = root(record.keys[0])
    groups: dict[str, set[int]] = {}
    for record, row in zip(records, truth, strict=True):
        if record.accepted and record.keys:
            assert row["component"] is not None
            groups.setdefault(root(record.keys[0]), set()).add(row["component"])
        else:
            assert row["component"] is None
    assert all(len(components) == 1 for components in groups.values())
    assert len({next(iter(c)) for c in groups.values()}) == len(groups)


def test_truth_persons_hold_the_true_purchase_parameters(demo: DemoManifest) -> None:
    persons = pq.read_table(demo.truth_persons_path).to_pylist()
    params = json.loads(demo.params_path.read_text(encoding="utf-8"))
    buyers = [row for row in persons if row["purchase_rate"] is not None]
    process = params["purchase_process"]

    assert len(persons) == demo.persons
    assert Counter(row["group"] for row in persons)["member"] == MEMBERS
    mean_rate = sum(row["purchase_rate"] for row in buyers) / len(buyers)
    assert mean_rate == pytest.approx(process["r"] / process["alpha"], rel=0.15)
    assert {"r", "alpha", "a", "b", "q", "gamma", "p_spend"} <= set(process)
    assert params["seed"] == 7 and params["end_date"] == END.isoformat()
    assert params["counts"]["orders"] == demo.orders


def test_components_join_only_identifier_kinds_that_share_a_record() -> None:
    from memberops.demo.catalogue import IdType, bit
    from memberops.demo.truth import components

    # Person 0: till order (phone + card), register in the app (openid + unionid), a group join
    # (unionid), a Meituan order (Meituan id), and a malformed order with phone + Meituan id.
    # Person 1: one guest order without identifiers.
    person = np.asarray([0, 0, 0, 0, 0, 1], dtype=np.int64)
    mask = np.asarray(
        [
            bit(IdType.PHONE) | bit(IdType.MEMBER_NO),
            bit(IdType.MP_OPENID) | bit(IdType.UNIONID),
            bit(IdType.UNIONID),
            bit(IdType.MEITUAN),
            bit(IdType.PHONE) | bit(IdType.MEITUAN),
            0,
        ],
        dtype=np.uint8,
    )
    usable = np.asarray([True, True, True, True, False, True])

    result = components(person, mask, usable, persons=2)

    # Phone+card → smallest kind 0; unionid+openid → kind 2; Meituan alone → kind 7; the malformed
    # record cannot link phone to Meituan; the guest order has no component.
    assert result.tolist() == [0, 2, 2, 7, -1, -1]


def test_local_times_carry_the_offset_of_their_own_day() -> None:
    from memberops.demo.calendar import Period, utc_offset_minutes
    from memberops.demo.formats import timestamp
    from memberops.demo.text import to_arrow

    period = Period.ending(date(2026, 10, 31), 1)  # 2025-11-01 .. 2026-10-31
    offsets = utc_offset_minutes(period, "Europe/Berlin")
    winter, summer = 0, (date(2026, 7, 1) - period.start).days * 86_400 + 9 * 3_600 + 30 * 60
    seconds = np.asarray([winter, summer], dtype=np.int64)

    with_offset = to_arrow([timestamp(seconds, period.epoch_day, offsets)], 2).to_pylist()
    local = to_arrow([timestamp(seconds, period.epoch_day, None)], 2).to_pylist()

    assert with_offset == ["2025-11-01T00:00:00+01:00", "2026-07-01T09:30:00+02:00"]
    assert local == ["2025-11-01 00:00:00", "2026-07-01 09:30:00"]


def test_phone_layouts_and_damage() -> None:
    from memberops.demo.formats import phone
    from memberops.demo.text import to_arrow

    digits = np.frombuffer(b"13800138000" * 7, dtype=np.uint8).reshape(7, 11)
    style = np.asarray([0, 1, 2, 3, 4, 5, 2], dtype=np.uint8)
    too_short = np.asarray([False] * 6 + [True])
    bad_prefix = np.asarray([False, True, False, False, False, False, False])
    present = np.asarray([True] * 7)

    rendered = to_arrow([phone(digits, style, too_short, bad_prefix, present)], 7).to_pylist()

    assert rendered == [
        "13800138000", "128-0013-8000", "+86 138 0013 8000", "86 13800138000", "+8613800138000",
        "138 0013 8000", "1380013800",
    ]  # fmt: skip
    assert _phone("128-0013-8000") is None
    assert _phone("1380013800") is None
    assert {_phone(text) for text in rendered[2:6]} == {"+8613800138000"}


def test_refuses_what_it_cannot_simulate(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 100 members"):
        generate_demo(tmp_path, members=10, end_date=END)
    with pytest.raises(ValueError, match="Spring Festival"):
        generate_demo(tmp_path, members=MEMBERS, end_date=date(2050, 1, 1))

from datetime import UTC, datetime

import pytest

from memberops.identity.identifiers import IdentifierKey, IdentifierKind
from memberops.ingest.profiles import PROFILES
from memberops.ingest.records import OrderLineIn, RecordRejected, parse_event, parse_order

ORDER = {
    "source": "pos",
    "external_id": "P1",
    "paid_at": "2026-03-01T12:00:00+08:00",
    "amount": "30.50",
    "phone": "138-0013-8000",
    "items": '[{"sku": "D1", "category": "榴莲", "qty": 1, "amount": "20.50"}, {"sku": "C1", "category": "车厘子", "qty": 2, "amount": "10.00"}]',
}


def test_a_canonical_order_is_parsed_exactly() -> None:
    order = parse_order(ORDER)
    assert order.paid_at == datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    assert order.amount_fen == 3050
    assert order.identifiers == (IdentifierKey(IdentifierKind.PHONE, "", "+8613800138000"),)
    assert order.lines == (OrderLineIn("D1", "榴莲", 1, 2050), OrderLineIn("C1", "车厘子", 2, 1000))
    assert order.refund is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"external_id": ""}, "external_id is missing"),
        ({"paid_at": None}, "paid_at is missing"),
        ({"paid_at": "2026-03-01 12:00:00"}, "has no UTC offset"),
        ({"amount": "abc"}, "amount: 'abc' is not a number"),
        ({"amount": "-3"}, "amount: '-3' is negative"),
        ({"phone": "1380013800"}, "is not a valid phone number"),
        ({"items": "[{"}, "items is not valid JSON"),
        ({"items": '{"sku": 1}'}, "items must be a JSON list"),
        ({"amount": "31.00"}, "items do not add up to amount"),
        ({"status": "lost"}, "status 'lost' is not paid or refunded"),
        ({"refund_amount": "99.00"}, "refund_amount is more than amount"),
    ],
)
def test_bad_orders_are_rejected_with_the_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(RecordRejected, match=reason):
        parse_order({**ORDER, **change})


def test_a_refunded_order_carries_a_full_refund_and_a_partial_one_its_amount() -> None:
    full = parse_order({**ORDER, "status": "refunded"})
    assert full.refund is not None
    assert (full.refund.external_id, full.refund.amount_fen) == ("P1#refund", 3050)
    partial = parse_order({**ORDER, "refund_amount": "5.00", "refunded_at": "2026-03-02T10:00:00+08:00"})
    assert partial.refund is not None
    assert partial.refund.amount_fen == 500
    assert partial.refund.refunded_at == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def test_an_order_without_identifiers_is_a_guest_order() -> None:
    order = parse_order({key: value for key, value in ORDER.items() if key != "phone"})
    assert order.identifiers == ()


def test_openid_namespace_is_the_source_unless_app_id_says_otherwise() -> None:
    order = parse_order({**ORDER, "source": "mini_program", "openid": "oX1"})
    assert IdentifierKey(IdentifierKind.OPENID, "mini_program", "oX1") in order.identifiers
    order = parse_order({**ORDER, "source": "mini_program", "openid": "oX1", "app_id": "wx123"})
    assert IdentifierKey(IdentifierKind.OPENID, "wx123", "oX1") in order.identifiers


def test_the_pos_profile_maps_columns_status_words_and_local_time() -> None:
    row = {
        "单号": "P9",
        "支付时间": "2026-03-01 12:00:00",
        "实收金额": "8.00",
        "会员手机": "13800138000",
        "状态": "已退款",
    }
    order = parse_order(PROFILES["pos"].to_canonical(row), naive_zone="Asia/Shanghai")
    assert (order.source, order.external_id, order.amount_fen) == ("pos", "P9", 800)
    assert order.paid_at == datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    assert order.refund is not None
    with pytest.raises(RecordRejected, match="status '作废' is not one of 已支付, 已退款"):
        PROFILES["pos"].to_canonical({**row, "状态": "作废"})


EVENT = {
    "type": "share",
    "occurred_at": "2026-03-01T12:00:00+08:00",
    "field": "mini_program",
    "openid": "oX1",
}


def test_events_without_an_external_id_are_keyed_by_content() -> None:
    first = parse_event({**EVENT, "attributes": {"share_id": "S1"}})
    again = parse_event({**EVENT, "attributes": '{"share_id": "S1"}'})
    other = parse_event({**EVENT, "attributes": {"share_id": "S2"}})
    assert first.dedup_key == again.dedup_key != other.dedup_key
    assert first.share_id == "S1"
    assert (
        parse_event({**EVENT, "external_id": "e1", "attributes": {"share_id": "S1"}}).dedup_key
        == "mini_program:e1"
    )


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({**EVENT, "type": "dance"}, "type 'dance' is not one of"),
        ({**EVENT, "attributes": {}}, "a share event needs attributes.share_id"),
        (
            {**EVENT, "type": "review", "attributes": {"sku": "D1", "rating": 6}},
            "rating, a whole number from 1 to 5",
        ),
        ({**EVENT, "type": "review", "attributes": {"rating": 5}}, "needs attributes.sku"),
        (
            {**EVENT, "type": "consent", "attributes": {"channel": "fax", "granted": True}},
            "needs attributes.channel",
        ),
        (
            {**EVENT, "type": "consent", "attributes": {"channel": "sms", "granted": "yes"}},
            "granted, true or false",
        ),
        (
            {"type": "visit", "occurred_at": "2026-03-01T12:00:00+08:00", "field": "pos"},
            "at least one identifier",
        ),
        ({**EVENT, "type": "visit", "attributes": "[1]"}, "attributes must be a JSON object"),
    ],
)
def test_bad_events_are_rejected_with_the_reason(event: dict[str, object], reason: str) -> None:
    with pytest.raises(RecordRejected, match=reason):
        parse_event(event)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount": "1e30"}, "is not a plain decimal number"),
        ({"amount": "10000000000.00"}, "is too large"),
        ({"paid_at": "9999-12-31T23:59:59-23:59"}, "outside the range of dates"),
        ({"external_id": "P\x001"}, "external_id contains control characters"),
        ({"app_id": "a" * 65, "openid": "oX"}, "app_id is longer than 64"),
        (
            {"items": '[{"sku": "D1", "qty": 99999999, "amount": "30.50"}]'},
            r"qty must be from 1 to 1,000,000",
        ),
        (
            {"items": '[{"sku": "D1", "category": "' + "c" * 65 + '", "amount": "30.50"}]'},
            "category is longer than 64",
        ),
    ],
)
def test_values_that_would_not_fit_the_store_are_rejected(change: dict[str, object], reason: str) -> None:
    with pytest.raises(RecordRejected, match=reason):
        parse_order({**ORDER, **change})


def test_event_attributes_are_bounded() -> None:
    with pytest.raises(RecordRejected, match="share_id is longer than 64"):
        parse_event({**EVENT, "attributes": {"share_id": "s" * 65}})
    with pytest.raises(RecordRejected, match="NUL character"):
        parse_event({**EVENT, "type": "visit", "attributes": {"page": "a\x00b"}})

"""Source profiles: how each channel's export columns map onto the canonical order columns.

A profile renames columns, fixes the source, maps status words, and says whether times without
an offset are local times of the brand (most Chinese back-office exports are). The table in
docs/import-formats.md is generated from the same facts; keep them in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memberops.ingest.records import RecordRejected

CANONICAL_ORDER_COLUMNS = (
    "source",
    "external_id",
    "paid_at",
    "amount",
    "store",
    "phone",
    "unionid",
    "openid",
    "app_id",
    "platform_user_id",
    "member_no",
    "email",
    "status",
    "refund_amount",
    "refunded_at",
    "items",
    "share_id",
)


@dataclass(frozen=True)
class Profile:
    """How one channel's export maps onto canonical order columns."""

    name: str
    columns: Mapping[str, str]  # canonical column -> export column
    source: str | None = None  # fixed source, or None when the file has a source column
    status_words: Mapping[str, str] = field(default_factory=dict)
    local_times: bool = False  # times without offset are in the brand's time zone

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Export columns a file must have for this profile."""
        needed = ["external_id", "paid_at", "amount"] + ([] if self.source else ["source"])
        return tuple(self.columns[name] for name in needed)

    def to_canonical(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Return the canonical mapping of one export row."""
        canonical = {name: row.get(column) for name, column in self.columns.items()}
        if self.source:
            canonical["source"] = self.source
        status = canonical.get("status")
        if self.status_words and status not in (None, ""):
            word = str(status).strip()
            if word not in self.status_words:
                raise RecordRejected(f"status {word!r} is not one of {', '.join(self.status_words)}")
            canonical["status"] = self.status_words[word]
        return canonical


def _profile(name: str, source: str, local_times: bool, words: dict[str, str], /, **columns: str) -> Profile:
    return Profile(name=name, source=source, columns=columns, status_words=words, local_times=local_times)


PROFILES: dict[str, Profile] = {
    "canonical": Profile(name="canonical", columns={name: name for name in CANONICAL_ORDER_COLUMNS}),
    "pos": _profile(
        "pos",
        "pos",
        True,
        {"已支付": "paid", "已退款": "refunded"},
        external_id="单号",
        paid_at="支付时间",
        amount="实收金额",
        store="门店编码",
        phone="会员手机",
        member_no="会员卡号",
        status="状态",
        refund_amount="退款金额",
        items="商品明细",
    ),
    "mini_program": _profile(
        "mini_program",
        "mini_program",
        False,
        {"SUCCESS": "paid", "REFUND": "refunded"},
        external_id="order_no",
        paid_at="pay_time",
        amount="total_amount",
        store="store_code",
        phone="phone",
        member_no="member_no",
        unionid="unionid",
        openid="openid",
        status="status",
        refund_amount="refund_amount",
        items="goods",
        share_id="share_id",
    ),
    "tmall": _profile(
        "tmall",
        "tmall",
        True,
        {"交易成功": "paid", "交易关闭": "refunded"},
        external_id="订单编号",
        paid_at="订单付款时间",
        amount="实付金额",
        phone="手机号",
        platform_user_id="买家ID",
        status="订单状态",
        refund_amount="退款金额",
        items="商品明细",
    ),
    "douyin": _profile(
        "douyin",
        "douyin",
        True,
        {"completed": "paid", "refunded": "refunded"},
        external_id="order_id",
        paid_at="pay_time",
        amount="pay_amount",
        phone="phone",
        platform_user_id="buyer_id",
        status="order_status",
        refund_amount="refund_amount",
        items="items",
    ),
    "meituan": _profile(
        "meituan",
        "meituan",
        True,
        {"已完成": "paid", "已退款": "refunded"},
        external_id="订单号",
        paid_at="下单时间",
        amount="订单金额",
        store="门店编码",
        platform_user_id="用户ID",
        status="订单状态",
        refund_amount="退款金额",
        items="商品明细",
    ),
}

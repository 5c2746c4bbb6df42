"""``memberops coupon|reward|plan|checkout|benefit`` as a user runs them: exit codes and JSON.

One test runs real processes (the way an operator or a cron job does); the others invoke the same
Typer application in-process on the test database, so they also run on PostgreSQL and stay quick.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from memberops.ingest.records import parse_event
from memberops.kit.db import unit_of_work
from memberops.loyalty.points import adjust_points
from memberops.loyalty.programme import demo_programme
from memberops.wiring import Services
from tests.integration.cli_support import cli_runner

from .test_cli import memberops

EVENTS = """type,occurred_at,field,external_id,phone
register,2026-01-01T09:00:00+08:00,pos,REG-1,13800138000
"""
VOUCHERS = """code,template,phone,buyer_id
TM-0001,welcome_5,,tb_77
TM-0002,nope,13900000000,
"""
APPLES = "APL-FJ,苹果,3,20"


Run = Callable[..., Any]


@pytest.fixture
def run(services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    """The demo programme, a member (13800138000) with 100 points; ``run("coupon list X")`` → its JSON."""
    with unit_of_work(services.sessions) as session:
        services.loyalty.apply_programme(session, demo_programme(), actor="test")
        event = parse_event(
            {
                "type": "register",
                "occurred_at": "2026-01-01T09:00:00+08:00",
                "field": "pos",
                "phone": "13800138000",
                "external_id": "REG-1",
            }
        )
        [outcome] = services.ingest.ingest_events(session, [event], actor="test")
        assert outcome.person_id is not None
        adjust_points(
            session,
            outcome.person_id,
            100,
            reason="welcome",
            actor="test",
            key="k",
            time_zone=services.loyalty.time_zone,
        )
    monkeypatch.chdir(tmp_path)
    run_cli = cli_runner(services, monkeypatch)

    def invoke(command: str, *extra: str, status: int = 0, json_output: bool = True) -> Any:
        args = shlex.join([*extra, *(["--format", "json"] if json_output else [])])
        result = run_cli(f"{command} {args}", status)
        if status != 0 or not json_output:
            return result
        return json.loads(result.stdout)

    return invoke


def test_the_real_command_settles_an_order_and_exits_2_on_a_refusal(tmp_path: Path) -> None:
    programme = resources.files("memberops.loyalty").joinpath("demo_programme.toml").read_text("utf-8")
    (tmp_path / "programme.toml").write_text(programme, encoding="utf-8")
    (tmp_path / "events.csv").write_text(EVENTS, encoding="utf-8")
    assert memberops(tmp_path, "programme", "apply", "programme.toml").returncode == 0
    assert memberops(tmp_path, "import", "events", "events.csv").returncode == 0

    issued = memberops(
        tmp_path,
        "coupon",
        "issue",
        "13800138000",
        "--template",
        "welcome_5",
        "--key",
        "c1",
        "--format",
        "json",
    )
    coupon = json.loads(issued.stdout)["coupons"][0]
    settled = memberops(
        tmp_path,
        "checkout",
        "settle",
        "13800138000",
        "--order",
        "POS-1",
        "--line",
        APPLES,
        "--coupon",
        str(coupon["id"]),
        "--format",
        "json",
    )
    refused = memberops(tmp_path, "coupon", "redeem", coupon["code"], "--key", "again")

    assert issued.returncode == 0, issued.stderr
    assert settled.returncode == 0, settled.stderr
    assert (json.loads(settled.stdout)["payable"], json.loads(settled.stdout)["coupon_discount"]) == (
        "55.00",
        "5.00",
    )
    assert refused.returncode == 2
    assert f"coupon {coupon['id']} is redeemed" in refused.stderr


def test_issue_quote_settle_and_refund(run: Run) -> None:
    first = run("coupon issue 13800138000 --template repurchase_10 --key c1")
    again = run("coupon issue 13800138000 --template repurchase_10 --key c1")
    assert (first["created"], again["created"], again["replayed"]) == (1, 0, 1)
    [coupon] = run("coupon list 13800138000")
    assert (coupon["template"], coupon["status"]) == ("repurchase_10", "issued")

    quote = run(f"checkout quote 13800138000 --line {APPLES} --points 25")
    assert (quote["coupon_ids"], quote["coupon_discount"], quote["payable"]) == (
        [coupon["id"]],
        "10.00",
        "25.00",
    )

    settle = f"checkout settle 13800138000 --order POS-1 --line {APPLES} --coupon {coupon['id']}"
    settled = run(settle, "--points", "25")
    replay = run(settle, "--points", "25")
    assert (settled["status"], settled["payable"], settled["created"]) == ("settled", "25.00", True)
    assert (replay["id"], replay["created"]) == (settled["id"], False)
    assert run("points balance 13800138000")["balance"] == 75
    refused = run(settle, "--points", "10", status=2, json_output=False)
    assert "settled with different content" in refused.stderr

    refunded = run(f"checkout refund {settled['id']} --key r1")
    assert (refunded["settlement"]["status"], refunded["refund"]["points_restored"]) == ("refunded", 25)
    assert run("points balance 13800138000")["balance"] == 100
    assert run("coupon list 13800138000 --status issued")[0]["id"] == coupon["id"]


def test_rewards_plans_and_birthdays(run: Run) -> None:
    redeemed = run("reward redeem 13800138000 voucher_5 --key w1")
    assert (redeemed["reward"], redeemed["points"], redeemed["coupon"]["template"]) == (
        "voucher_5",
        5,
        "voucher_5",
    )
    catalogue = {item["code"]: item for item in run("reward list --person 13800138000")}
    assert catalogue["durian_gift_box"]["rejection"] == '"金枕榴莲礼盒" is for 金卡 Gold members only'
    run(f"reward cancel {redeemed['id']} --reason changed", json_output=False)
    assert run("points balance 13800138000")["balance"] == 100

    bought = run("plan buy 13800138000 half_year --key p1")
    assert (bought["term"]["kind"], bought["plan"]["status"]) == ("purchase", "active")
    status = run("plan status 13800138000")
    assert (status["status"], status["plan"], len(status["terms"])) == ("active", "half_year", 1)
    refund = run("plan refund 13800138000 --reason asked --key r1")
    assert (refund["refund"]["rule"], refund["refund"]["amount"]) == ("full", "99.00")
    assert "renew" in run("plan renew 13800138000 annual --key p2", status=2, json_output=False).stderr

    run("benefit birthday 13800138000 1990-01-15", json_output=False)
    gifts = run("benefit birthday-gifts --on 2026-01-20")
    assert [(g["source"], len(g["coupon_ids"])) for g in gifts] == [("tier:standard", 1)]
    assert run("benefit birthday-gifts --on 2026-01-21") == []


def test_importing_marketplace_codes_reports_bad_rows(run: Run, tmp_path: Path) -> None:
    (tmp_path / "vouchers.csv").write_text(VOUCHERS, encoding="utf-8")

    imported = run("coupon import vouchers.csv --channel tmall --format json", status=3, json_output=False)
    body = json.loads(imported.stdout)
    assert (body["imported"], body["rejections"]) == (
        1,
        [{"line": 3, "reason": 'the programme 2026.1 has no coupon template "nope"'}],
    )
    assert run("coupon redeem TM-0001 --channel pos --key t1")["status"] == "redeemed"
    assert "is redeemed" in run("coupon redeem TM-0001 --key t2", status=2, json_output=False).stderr
    assert (
        "no coupon is known by 'NOPE'"
        in run("coupon void NOPE --reason x", status=2, json_output=False).stderr
    )
    assert run("coupon expire") == {"expired": 0, "notified": 0}
    assert run("plan expire", json_output=False).stdout.strip() == "0 plan.expiring notices, 0 plans expired"

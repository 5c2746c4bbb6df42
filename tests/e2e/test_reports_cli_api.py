"""``memberops report …`` and ``GET /api/v1/reports/…`` over the history of ``reports_support``.

The HTTP and CLI answers are the report functions' own figures (``as_dict``), so the exact values
are proven once in ``tests/integration/test_loyalty_reports.py`` and here only spot-checked. One
test runs the real ``memberops`` process, the way an operator or a cron job does.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from memberops.access.rules import Role
from memberops.kit.clock import business_date, utc_now
from memberops.loyalty.reports import coupon_report, points_economics, tier_report
from memberops.wiring import Services
from tests.integration.cli_support import cli_runner
from tests.integration.reports_support import ZONE, History, build_history, read

from .test_api_support import Api, error_of, start_api
from .test_cli import memberops

QUARTER = {"from": "2026-01-01", "to": "2026-03-31"}


@pytest.fixture
def history(services: Services) -> History:
    return build_history(services)


@pytest.fixture
def api(history: History) -> Api:
    return start_api(history.services)


def _today() -> date:
    return business_date(utc_now(), ZONE)


# --- HTTP -----------------------------------------------------------------------------------------------


def test_the_points_report_over_http_is_the_report_itself(api: Api, history: History) -> None:
    response = api.get("/reports/points", role=Role.ANALYST, **QUARTER)

    assert response.status_code == 200, response.json()
    body = response.json()
    expected = read(
        history.services,
        lambda s: points_economics(s, start=date(2026, 1, 1), end=date(2026, 3, 31), time_zone=ZONE),
    )
    assert body == expected.as_dict()
    assert (body["issued"], body["burned"], body["outstanding_points"], body["liability"]) == (
        547,
        120,
        427,
        "427.00",
    )
    assert (body["redemption_rate"], body["return_on_points"], body["time_zone"]) == (
        "0.2194",
        "32.9167",
        ZONE,
    )
    assert [(m["start"], m["issued"], m["return_on_points"]) for m in body["months"]] == [
        ("2026-01-01", 500, None),
        ("2026-02-01", 30, "0.0000"),
        ("2026-03-01", 17, None),
    ]


def test_the_tier_and_coupon_reports_over_http(api: Api, history: History) -> None:
    tiers = api.get("/reports/tiers", role=Role.OPERATOR, on="2026-03-31", **QUARTER)
    coupons = api.get("/reports/coupons", role=Role.ADMIN, **{"from": "2026-03-01", "to": "2026-03-31"})

    assert (tiers.status_code, coupons.status_code) == (200, 200)
    expected_tiers = read(
        history.services,
        lambda s: tier_report(
            s, on=date(2026, 3, 31), start=date(2026, 1, 1), end=date(2026, 3, 31), time_zone=ZONE
        ),
    )
    assert tiers.json() == expected_tiers.as_dict()
    assert [(c["tier"], c["members"]) for c in tiers.json()["distribution"]] == [
        ("standard", 3),
        ("silver", 1),
        ("gold", 0),
    ]
    assert (tiers.json()["up_rate"], tiers.json()["transitions"][0]["to_tier"]) == ("0.3333", "silver")
    expected_coupons = read(
        history.services,
        lambda s: coupon_report(s, start=date(2026, 3, 1), end=date(2026, 3, 31), time_zone=ZONE),
    )
    assert coupons.json() == expected_coupons.as_dict()
    assert coupons.json()["total"] == {
        "template": "*",
        "name": None,
        "issued": 1,
        "redeemed": 2,
        "released": 1,
        "expired": 3,
        "voided": 2,
        "redemption_rate": "2.0000",
        "discount": "15.00",
        "orders": 2,
        "order_sales": "150.00",
    }


def test_reports_default_to_recent_months_up_to_today(api: Api) -> None:
    today = _today()

    points = api.get("/reports/points").json()
    tiers = api.get("/reports/tiers").json()
    coupons = api.get("/reports/coupons").json()

    assert (points["end"], len(points["months"])) == (today.isoformat(), 12)
    assert points["start"] == points["months"][0]["start"]
    assert date.fromisoformat(points["start"]).day == 1
    assert (tiers["on"], tiers["start"], tiers["end"]) == (
        today.isoformat(),
        today.replace(day=1).isoformat(),
        today.isoformat(),
    )
    assert (coupons["start"], coupons["end"]) == (today.replace(day=1).isoformat(), today.isoformat())
    only_to = api.get("/reports/coupons", to="2026-03-31").json()
    assert (only_to["start"], only_to["end"]) == ("2026-03-01", "2026-03-31")


@pytest.mark.parametrize("path", ["/reports/points", "/reports/tiers", "/reports/coupons"])
def test_reports_are_for_analysts_operators_and_admins(api: Api, path: str) -> None:
    for role in (Role.ADMIN, Role.OPERATOR, Role.ANALYST):
        assert api.get(path, role=role, **QUARTER).status_code == 200, role
    assert error_of(api.get(path, role=Role.GUIDE, **QUARTER)) == (403, "forbidden")
    assert error_of(api.get(path, role=None, **QUARTER)) == (401, "unauthenticated")


def test_a_bad_period_is_a_validation_error(api: Api) -> None:
    assert error_of(api.get("/reports/points", **{"from": "2026-04-01", "to": "2026-03-31"})) == (
        422,
        "validation_failed",
    )
    assert error_of(api.get("/reports/coupons", **{"from": "2000-01-01", "to": "2026-03-31"})) == (
        422,
        "validation_failed",
    )
    assert error_of(api.get("/reports/tiers", on="31/03/2026")) == (422, "validation_failed")
    assert error_of(api.get("/reports/points", **{"from": "2026-02-30"})) == (422, "validation_failed")


def test_the_reports_are_described_in_openapi(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()

    operation = schema["paths"]["/api/v1/reports/points"]["get"]
    assert operation["tags"] == ["reports"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {"from", "to"}
    figures = schema["components"]["schemas"]["PointsFiguresView"]["properties"]
    assert figures["redemption_rate"]["description"].startswith("burned ÷ issued")


# --- CLI ------------------------------------------------------------------------------------------------


@pytest.fixture
def run(history: History, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``run("report points --from …")`` invokes the CLI in-process on the history's database."""
    return cli_runner(history.services, monkeypatch)


def test_report_points_as_json_is_the_report(run: Any, history: History) -> None:
    result = run("report points --from 2026-01-01 --to 2026-03-31 --format json")

    expected = read(
        history.services,
        lambda s: points_economics(s, start=date(2026, 1, 1), end=date(2026, 3, 31), time_zone=ZONE),
    )
    assert json.loads(result.stdout) == expected.as_dict()


def test_report_points_as_a_table_shows_yuan_and_rates(run: Any) -> None:
    out = run("report points --from 2026-01-01 --to 2026-03-31").stdout

    assert "points economics 2026-01-01 – 2026-03-31 (Asia/Shanghai)" in out
    for shown in ("¥427.00", "¥3,950.00", "¥120.00", "21.94%", "32.92×", "2026-01", "2026-03", "-29.41%"):
        assert shown in out, shown
    partial = run("report points --from 2026-01-15 --to 2026-02-10").stdout
    assert "2026-01-15 – 2026-01-31" in partial


def test_report_tiers_and_coupons(run: Any, history: History) -> None:
    tiers = json.loads(
        run("report tiers --on 2026-03-31 --from 2026-01-01 --to 2026-03-31 --format json").stdout
    )
    coupons = json.loads(run("report coupons --from 2026-03-01 --to 2026-03-31 --format json").stdout)
    tier_table = run("report tiers --on 2026-03-31 --from 2026-01-01 --to 2026-03-31").stdout
    coupon_table = run("report coupons --from 2026-03-01 --to 2026-03-31").stdout

    assert (
        tiers
        == read(
            history.services,
            lambda s: tier_report(
                s, on=date(2026, 3, 31), start=date(2026, 1, 1), end=date(2026, 3, 31), time_zone=ZONE
            ),
        ).as_dict()
    )
    assert (
        coupons
        == read(
            history.services,
            lambda s: coupon_report(s, start=date(2026, 3, 1), end=date(2026, 3, 31), time_zone=ZONE),
        ).as_dict()
    )
    assert "members per tier on 2026-03-31 (4 members)" in tier_table
    assert "75.00%" in tier_table
    assert "ended higher (33.33%)" in tier_table
    for shown in ("welcome_5", "repurchase_10", "¥15.00", "¥150.00", "200.00%", "all"):
        assert shown in coupon_table, shown


def test_report_with_a_backwards_period_fails_clearly(run: Any) -> None:
    result = run("report coupons --from 2026-04-01 --to 2026-03-31", status=2)

    assert "validation_failed" in result.stderr
    assert "before it starts" in result.stderr
    assert run("report points --from 2026/01/01", status=2).exit_code == 2


def test_report_runs_as_a_real_process_on_an_empty_database(tmp_path: Path) -> None:
    done = memberops(
        tmp_path, "report", "points", "--from", "2026-01-01", "--to", "2026-02-28", "--format", "json"
    )

    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert (body["issued"], body["liability"], body["redemption_rate"], len(body["months"])) == (
        0,
        None,
        None,
        2,
    )
    table = memberops(tmp_path, "report", "tiers", "--on", "2026-01-31")
    assert table.returncode == 0, table.stderr
    assert "members per tier on 2026-01-31 (0 members)" in table.stdout

"""``memberops analyze kpis|cross|cohorts|magic-number|preferences`` and their HTTP twins.

The figures are proven in ``test_insight_kpis`` on the same hand-worked chain; here the CLI and
the API must print the same ones in their formats and refuse bad input cleanly. The demo
programme is applied so the tier order (standard, silver, gold) comes from the store.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from memberops.access.rules import Role
from memberops.wiring import Services
from tests.e2e.test_api_support import Api, error_of, start_api
from tests.integration.cli_support import CliRun, cli_runner
from tests.integration.kpi_support import build_chain
from tests.integration.loyalty_support import apply


@pytest.fixture
def chain(services: Services) -> Services:
    build_chain(services.engine)
    apply(services)
    return services


@pytest.fixture
def run(chain: Services, monkeypatch: pytest.MonkeyPatch) -> CliRun:
    return cli_runner(chain, monkeypatch)


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_analyze_kpis(run: Any) -> None:
    data = json.loads(run("analyze kpis --period 2026-10 --format json").stdout)

    assert data["tiers"] == ["standard", "silver", "gold"]
    overall = data["overall"]
    assert (overall["members"], overall["active_members"], overall["churn_rate"]) == (6, 4, "0.6667")
    assert (overall["member_sales_share"], overall["member_aov"], overall["non_member_aov"]) == (
        "0.7870",
        "110.83",
        "45.00",
    )
    assert [group["group"] for group in data["by"]["tier"]] == ["standard", "silver", "gold", "non_member"]

    rows = _csv(run("analyze kpis --as-of 2026-10-31 --period 2026-10 --format csv").stdout)
    assert rows[0]["dimension"] == "overall"
    assert rows[0]["repurchase_rate"] == "0.6000"
    mall = next(row for row in rows if row["dimension"] == "store_type" and row["group"] == "mall")
    assert (mall["members"], mall["sales"], mall["member_sales"]) == ("3", "395.00", "295.00")

    table = run("analyze kpis --period 2026-10").stdout
    for shown in ("by store_type", "by tier", "non_member", "78.70%", "¥110.83", "66.67%"):
        assert shown in table, shown


def test_analyze_cross(run: Any) -> None:
    data = json.loads(run("analyze cross --period 2026-10 --format json").stdout)
    assert (data["rows"], data["columns"], data["measure"]) == ("tier", "store_type", "members")
    assert data["row_totals"] == {"standard": 3, "silver": 2, "gold": 1}

    rows = _csv(
        run("analyze cross --period 2026-10 --rows channel --cols store --measure sales --format csv").stdout
    )
    assert rows == [
        {"channel": "mini_program", "store": "none", "sales": "100.00"},
        {"channel": "pos", "store": "BJ01", "sales": "215.00"},
        {"channel": "pos", "store": "SH01", "sales": "350.00"},
        {"channel": "pos", "store": "SH02", "sales": "180.00"},
    ]
    table = run("analyze cross --period 2026-10 --measure aov").stdout
    for shown in ("aov: tier × store_type", "¥66.67", "¥84.50"):
        assert shown in table, shown


def test_analyze_cohorts(run: Any) -> None:
    data = json.loads(run("analyze cohorts --as-of 2026-10-31 --format json").stdout)
    assert (data["start"], data["end"]) == ("2025-11-01", "2026-10-31")
    assert [(c["cohort"], c["people"]) for c in data["cohorts"]] == [
        ("2025-12", 1),
        ("2026-06", 1),
        ("2026-09", 3),
        ("2026-10", 3),
    ]
    rows = _csv(run("analyze cohorts --as-of 2026-10-31 --format csv").stdout)
    assert {
        "cohort": "2026-09",
        "people": "3",
        "month": "1",
        "label": "2026-10",
        "buyers": "1",
        "share": "0.3333",
    } in rows
    assert "33.33%" in run("analyze cohorts --as-of 2026-10-31").stdout


def test_analyze_magic_number(run: Any) -> None:
    command = "analyze magic-number --as-of 2026-10-31 --window-days 30 --min-people 1"
    data = json.loads(run(f"{command} --format json").stdout)
    assert data["magic_number"] == 2
    assert [row["stay_rate"] for row in data["counts"]] == ["0.4000", "0.5000", "1.0000", "0.0000"]
    rows = _csv(run(f"{command} --format csv").stdout)
    assert rows[1] == {"purchases": "2", "reached": "6", "judged": "2", "stayed": "1", "stay_rate": "0.5000"}
    assert "magic number: 2" in run(command).stdout
    # The default needs 30 judged people: this little chain has no magic number.
    assert (
        json.loads(run("analyze magic-number --as-of 2026-10-31 --format json").stdout)["magic_number"]
        is None
    )


def test_analyze_magic_number_judges_a_past_month_by_the_as_of_date(run: Any) -> None:
    # Worked in test_insight_kpis (test_magic_number_judges_by_the_as_of_date): September's
    # 1st purchases P2 Sep 5, P1 Sep 10, P8 Sep 15 and 2nd purchase P10 Sep 2, 30-day windows.
    command = "analyze magic-number --period 2026-09 --window-days 30 --min-people 1 --format json"
    alone = json.loads(run(command).stdout)  # as of Sep 30: no window has closed
    assert alone["as_of"] == "2026-09-30"
    assert [(row["reached"], row["judged"], row["stayed"]) for row in alone["counts"]] == [
        (3, 0, 0),
        (1, 0, 0),
    ]
    later = json.loads(run(f"{command} --as-of 2026-10-31").stdout)  # every window closed by Oct 30
    assert (later["as_of"], later["start"], later["end"]) == ("2026-10-31", "2026-09-01", "2026-09-30")
    assert [(row["label"], row["reached"], row["judged"], row["stayed"]) for row in later["counts"]] == [
        ("1", 3, 3, 1),  # P1 bought again Oct 2 (22 days on); P2 and P8 did not
        ("2", 1, 1, 0),  # P10 bought nothing more
    ]


def test_analyze_preferences(run: Any) -> None:
    rows = _csv(run("analyze preferences --as-of 2026-10-31 --format csv").stdout)
    assert rows[4] == {
        "person_id": "5",
        "preferred": "mixed",
        "top_category": "tea",
        "top": "133.33",
        "spend": "319.99",
        "categories": "3",
        "top_share": "0.4167",
    }
    assert len(rows) == 9
    data = json.loads(run("analyze preferences --as-of 2026-10-31 --min-share 3/4 --format json").stdout)
    assert (data["buyers"], data["mixed"]) == (9, 4)
    table = run("analyze preferences --as-of 2026-10-31").stdout
    for shown in ("tea", "¥633.33", "75–100%"):
        assert shown in table, shown


def test_analyze_refuses_bad_options(run: Any) -> None:
    assert "invalid_option" in run("analyze cross --rows weather", status=2).stderr
    assert "two different" in run("analyze cross --rows tier --cols tier", status=2).stderr
    assert "not a measure" in run("analyze cross --measure profit", status=2).stderr
    assert "invalid_option" in run("analyze magic-number --threshold 2", status=2).stderr
    assert "invalid_option" in run("analyze preferences --min-share half", status=2).stderr
    assert "invalid_period" in run("analyze kpis --period 2026-13", status=2).stderr
    assert "invalid_option" in run("analyze magic-number --window-days 0", status=2).stderr


@pytest.fixture
def api(chain: Services) -> Api:
    return start_api(chain)


def test_kpi_analyses_over_http(api: Api) -> None:
    kpis = api.get("/insight/kpis", role=Role.ANALYST, period="2026-10")
    cross = api.get(
        "/insight/cross", role=Role.ANALYST, period="2026-10", measure="sales", rows="tier", cols="store"
    )
    cohorts = api.get("/insight/cohorts", role=Role.ANALYST, as_of="2026-10-31")
    magic = api.get(
        "/insight/magic-number", role=Role.ANALYST, as_of="2026-10-31", window_days=30, min_people=1
    )
    preferences = api.get("/insight/preferences", role=Role.ANALYST, as_of="2026-10-31")
    september = api.get(
        "/insight/magic-number",
        role=Role.ANALYST,
        as_of="2026-10-31",
        period="2026-09",
        window_days=30,
        min_people=1,
    )

    assert kpis.status_code == 200, kpis.json()
    assert kpis.json()["overall"]["tier_up_rate"] == "0.2000"
    assert kpis.json()["by"]["channel"][1]["group"] == "pos"
    assert cross.status_code == 200, cross.json()
    assert cross.json()["row_totals"]["gold"] == "315.00"
    assert cross.json()["column_totals"] == {
        "BJ01": "215.00",
        "SH01": "350.00",
        "SH02": "180.00",
        "none": "100.00",
    }
    assert cohorts.status_code == 200, cohorts.json()
    assert cohorts.json()["cohorts"][2]["months"][1]["share"] == "0.3333"
    assert magic.status_code == 200, magic.json()
    assert magic.json()["magic_number"] == 2
    assert september.status_code == 200, september.json()
    # September judged as of Oct 31 (worked in test_analyze_magic_number_judges_a_past_month_by_the_as_of_date).
    assert [(row["reached"], row["judged"], row["stayed"]) for row in september.json()["counts"]] == [
        (3, 3, 1),
        (1, 1, 0),
    ]
    assert preferences.status_code == 200, preferences.json()
    assert preferences.json()["top_share_buckets"] == {"0–25%": 0, "25–50%": 1, "50–75%": 3, "75–100%": 5}


def test_kpi_analyses_over_http_refuse(api: Api) -> None:
    assert error_of(api.get("/insight/cross", role=Role.ANALYST, rows="weather")) == (422, "invalid_option")
    assert error_of(api.get("/insight/cross", role=Role.ANALYST, rows="tier", cols="tier")) == (
        422,
        "invalid_option",
    )
    assert error_of(api.get("/insight/cross", role=Role.ANALYST, measure="profit")) == (422, "invalid_option")
    assert error_of(api.get("/insight/magic-number", role=Role.ANALYST, threshold="0")) == (
        422,
        "invalid_option",
    )
    assert error_of(api.get("/insight/preferences", role=Role.ANALYST, min_share="x")) == (
        422,
        "invalid_option",
    )
    assert error_of(api.get("/insight/kpis", role=Role.ANALYST, period="someday")) == (422, "invalid_period")
    assert error_of(api.get("/insight/cohorts", role=Role.GUIDE)) == (403, "forbidden")
    assert api.get("/insight/kpis", role=None).status_code == 401

"""``memberops analyze …`` and ``GET /api/v1/insight/…`` on the hand-worked shop.

The figures are proven in ``test_insight_analyses``; here the CLI and the API must print the same
ones, in their formats, and refuse bad input cleanly.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from memberops.access.rules import Role
from memberops.wiring import Services
from tests.e2e.test_api_support import Api, error_of, start_api
from tests.integration.cli_support import CliRun, cli_runner
from tests.integration.test_insight_analyses import build_shop


@pytest.fixture
def shop(services: Services) -> Services:
    build_shop(services.engine)
    return services


@pytest.fixture
def run(shop: Services, monkeypatch: pytest.MonkeyPatch) -> CliRun:
    return cli_runner(shop, monkeypatch)


def test_analyze_layers_json(run: Any) -> None:
    data = json.loads(run("analyze layers --period 2026-10 --format json").stdout)

    assert data["period"] == "2026-10"
    assert data["as_of"] == "2026-10-31"
    assert data["layers"] == {
        "connected": 2,
        "member_not_purchased": 3,
        "purchased": 1,
        "repurchase": 1,
        "koc": 2,
    }
    assert (data["capital"], data["conversion"]) == (9, "0.4444")
    assert data["connection"] == {"live_room": "0.5000", "mini_program": "0.6667"}


def test_analyze_layers_table_and_csv(run: Any) -> None:
    table = run("analyze layers --as-of 2026-10-31 --period 2026-10").stdout
    for shown in ("member_not_purchased", "44.44%", "66.67%", "¥743.00", "transitions 2026-09 → 2026-10"):
        assert shown in table, shown

    rows = list(csv.DictReader(io.StringIO(run("analyze layers --period 2026-10 --format csv").stdout)))
    assert {row["person_id"]: row["layer"] for row in rows} == {
        "1": "koc",
        "2": "koc",
        "3": "connected",
        "4": "purchased",
        "5": "member_not_purchased",
        "8": "member_not_purchased",
        "10": "connected",
        "11": "repurchase",
        "12": "member_not_purchased",
    }


def test_analyze_rfm_csv_has_yuan_and_classes(run: Any) -> None:
    rows = list(
        csv.DictReader(
            io.StringIO(run("analyze rfm --as-of 2026-10-31 --period 2026-10 --format csv").stdout)
        )
    )

    assert rows[0] == {
        "person_id": "1",
        "recency_days": "6",
        "frequency": "3",
        "monetary": "195.00",
        "r_score": "4",
        "f_score": "5",
        "m_score": "5",
        "rfm_class": "important_value",
    }
    assert len(rows) == 7


def test_analyze_rfm_with_brand_class_cuts(run: Any) -> None:
    data = json.loads(run("analyze rfm --period 2026-10 --class-cuts 7,1,150 --format json").stdout)

    assert data["class_cuts"] == {"recency_days": 7, "frequency": 1, "monetary": "150.00"}
    assert {c["class"]: c["people"] for c in data["classes"] if c["people"]} == {
        "important_value": 1,
        "important_keep": 1,
        "general_develop": 1,
        "general_keep": 1,
        "general_win_back": 3,
    }
    assert "important_value" in run("analyze rfm --period 2026-10").stdout


def test_analyze_lifecycle(run: Any) -> None:
    data = json.loads(run("analyze lifecycle --period 2026-10 --format json").stdout)

    assert data["stages"] == {
        "registered": 1,
        "new": 5,
        "active": 2,
        "silent": 0,
        "sleeping": 1,
        "churned": 1,
    }
    assert {"from": "registered", "to": "new", "people": 3} in data["flows"]
    shorter = json.loads(run("analyze lifecycle --period 2026-10 --cycle-days 10 --format json").stdout)
    assert shorter["stages"]["churned"] == 2
    assert "flows 2026-09-30 → 2026-10-31" in run("analyze lifecycle --period 2026-10").stdout


def test_analyses_default_to_the_brand_thresholds(
    run: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The brand's 10-day cycle: with no option the command shows what --cycle-days 10 shows.
    monkeypatch.setenv("MEMBEROPS_INSIGHT_CYCLE_DAYS", "10")
    data = json.loads(run("analyze lifecycle --period 2026-10 --format json").stdout)
    assert (data["cycle_days"], data["stages"]["churned"]) == (10, 2)
    # An option given wins over the brand's threshold.
    data = json.loads(run("analyze lifecycle --period 2026-10 --cycle-days 30 --format json").stdout)
    assert (data["cycle_days"], data["stages"]["churned"]) == (30, 1)
    brand = tmp_path / "brand.toml"
    brand.write_text('[insight]\nrfm_class_cuts = "7,1,150"\n')
    data = json.loads(run(f"analyze rfm --period 2026-10 --config {brand} --format json").stdout)
    assert data["class_cuts"] == {"recency_days": 7, "frequency": 1, "monetary": "150.00"}
    assert {c["class"]: c["people"] for c in data["classes"] if c["people"]} == {
        "important_value": 1,
        "important_keep": 1,
        "general_develop": 1,
        "general_keep": 1,
        "general_win_back": 3,
    }
    monkeypatch.setenv("MEMBEROPS_INSIGHT_STAGE_CYCLES", "1,2")
    assert "MEMBEROPS_INSIGHT_STAGE_CYCLES" in run("analyze lifecycle --period 2026-10", status=2).stderr


def test_analyze_refuses_bad_input(run: Any) -> None:
    assert "invalid_period" in run("analyze layers --period 2026-13", status=2).stderr
    assert "starts after" in run("analyze rfm --as-of 2026-10-31 --period 2026-11", status=2).stderr
    assert "NEW,ACTIVE" in run("analyze lifecycle --stage-cycles 1,2", status=2).stderr


@pytest.fixture
def api(shop: Services) -> Api:
    return start_api(shop)


def test_insight_over_http_for_an_analyst(api: Api) -> None:
    layers = api.get("/insight/layers", role=Role.ANALYST, period="2026-10")
    rfm = api.get("/insight/rfm", role=Role.ANALYST, period="2026-10", as_of="2026-10-31")
    lifecycle = api.get("/insight/lifecycle", role=Role.ANALYST, period="2026-10")

    assert layers.status_code == 200, layers.json()
    assert layers.json()["layers"]["koc"] == 2
    assert layers.json()["clv_transaction_value"] == "743.00"
    assert rfm.status_code == 200, rfm.json()
    assert rfm.json()["classes"][0] == {
        "class": "important_value",
        "name": "重要价值",
        "people": 1,
        "share": "0.1429",
        "monetary": "195.00",
        "purchase_days": 3,
    }
    assert lifecycle.status_code == 200, lifecycle.json()
    assert lifecycle.json()["stages"]["new"] == 5
    assert {"from": "new", "to": "active", "people": 2} in lifecycle.json()["flows"]


def test_insight_over_http_uses_the_brand_thresholds(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBEROPS_INSIGHT_CYCLE_DAYS", "10")
    brand = api.get("/insight/lifecycle", role=Role.ANALYST, period="2026-10")
    given = api.get("/insight/lifecycle", role=Role.ANALYST, period="2026-10", cycle_days=30)

    assert (brand.json()["cycle_days"], brand.json()["stages"]["churned"]) == (10, 2)
    assert (given.json()["cycle_days"], given.json()["stages"]["churned"]) == (30, 1)


def test_insight_over_http_refuses(api: Api) -> None:
    assert error_of(api.get("/insight/layers", role=Role.GUIDE, period="2026-10")) == (403, "forbidden")
    assert error_of(api.get("/insight/layers", role=Role.ANALYST, period="someday")) == (
        422,
        "invalid_period",
    )
    assert api.get("/insight/layers", role=None).status_code == 401

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
    assert data["connection"] == {
        "group_chat": "0.0000",
        "live_room": "0.5000",
        "mini_program": "0.8000",
        "pos": "0.7500",
    }


#: ``analyze layers --period 2026-10 --format csv`` on the shop, worked out by hand from ``build_shop``.
LAYERS_CSV = [
    "person_id,layer,transaction_value",
    "1,koc,235.00",  # Sep 10 ¥40 + Oct 2 ¥100 + Oct 20 ¥50 + ¥30 + merged P7's Oct 25 ¥15
    "2,koc,170.00",  # Oct 5 ¥200 − ¥50 refunded + Oct 6 ¥20
    "3,connected,60.00",  # Oct 7 ¥60
    "4,purchased,10.00",  # Oct 31 ¥10 (the Nov 1 ¥999 is after the period)
    "5,member_not_purchased,0.00",
    "8,member_not_purchased,80.00",  # Aug 1 ¥80 (Oct 8 ¥300 refunded in full)
    "10,connected,0.00",
    "11,repurchase,100.00",  # Oct 10 ¥45 (refunded after Oct 31) + Oct 11 ¥55
    "12,member_not_purchased,88.00",  # 2025-12-01 ¥88
]


def test_analyze_layers_table_and_csv(run: Any) -> None:
    table = run("analyze layers --as-of 2026-10-31 --period 2026-10").stdout
    for shown in ("member_not_purchased", "44.44%", "80.00%", "¥743.00", "transitions 2026-09 → 2026-10"):
        assert shown in table, shown

    text = run("analyze layers --period 2026-10 --format csv").stdout
    # Each person's own transaction value (net spend to Oct 31, yuan); together the ¥743.00 above.
    assert text.splitlines() == LAYERS_CSV


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


def test_analyze_cross_by_person_attributes(run: Any) -> None:
    # Hand-worked in test_insight_cross_people: the seven October members by stage and layer.
    data = json.loads(run("analyze cross --period 2026-10 --rows stage --cols layer --format json").stdout)

    assert data["row_groups"] == ["registered", "new", "active", "sleeping", "churned"]
    assert data["cells"] == [
        {"row": "registered", "column": "member_not_purchased", "value": 1},
        {"row": "new", "column": "purchased", "value": 1},
        {"row": "new", "column": "repurchase", "value": 1},
        {"row": "new", "column": "koc", "value": 1},
        {"row": "active", "column": "koc", "value": 1},
        {"row": "sleeping", "column": "member_not_purchased", "value": 1},
        {"row": "churned", "column": "member_not_purchased", "value": 1},
    ]
    assert data["total"] == 7


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


def test_cross_by_person_attributes_over_http(api: Api) -> None:
    found = api.get(
        "/insight/cross", role=Role.ANALYST, period="2026-10", rows="stage", cols="channel", measure="sales"
    )

    assert found.status_code == 200, found.json()
    assert found.json()["cells"] == [
        {"row": "new", "column": "pos", "value": "365.00"},
        {"row": "active", "column": "pos", "value": "265.00"},
    ]


def test_insight_over_http_refuses(api: Api) -> None:
    assert error_of(api.get("/insight/layers", role=Role.GUIDE, period="2026-10")) == (403, "forbidden")
    assert error_of(api.get("/insight/layers", role=Role.ANALYST, period="someday")) == (
        422,
        "invalid_period",
    )
    assert api.get("/insight/layers", role=None).status_code == 401


RFM_HEADER = "person_id,recency_days,frequency,monetary,r_score,f_score,m_score,rfm_class"


def test_people_over_http_are_the_cli_csv(api: Api, run: Any) -> None:
    layers = api.get("/insight/layers/people", role=Role.ANALYST, period="2026-10")
    rfm = api.get("/insight/rfm/people", role=Role.ANALYST, period="2026-10", as_of="2026-10-31")
    lifecycle = api.get("/insight/lifecycle/people", role=Role.ANALYST, period="2026-10")
    preferences = api.get("/insight/preferences/people", role=Role.ANALYST, as_of="2026-10-31")

    assert layers.status_code == 200, layers.text
    assert layers.headers["content-type"] == "text/csv; charset=utf-8"
    assert layers.text.splitlines() == LAYERS_CSV
    assert rfm.status_code == 200, rfm.text
    assert rfm.text.splitlines()[:2] == [RFM_HEADER, "1,6,3,195.00,4,5,5,important_value"]
    assert len(rfm.text.splitlines()) == 1 + 7
    assert lifecycle.status_code == 200, lifecycle.text
    # Days from the first and the last purchase day to Oct 31, and the stage (cycle 30 days) that
    # test_lifecycle_stages_and_flows works out.
    assert lifecycle.text.splitlines() == [
        "person_id,days_since_first,days_since_last,stage",
        "1,51,6,active",  # Sep 10; Oct 25 (merged P7's order)
        "2,26,25,new",  # Oct 5; Oct 6
        "3,24,24,new",  # Oct 7
        "4,0,0,new",  # Oct 31 (Nov 1 is after the as-of date)
        "5,,,registered",  # never bought
        "6,58,28,active",  # Sep 3; Oct 3
        "8,91,91,sleeping",  # Aug 1 (Oct 8 refunded in full)
        "9,17,17,new",  # Oct 14
        "11,21,20,new",  # Oct 10; Oct 11
        "12,334,334,churned",  # 2025-12-01
    ]
    assert preferences.status_code == 200, preferences.text
    # 12 months to Oct 31, every line is fruit: each buyer's whole net spend is their top category.
    assert preferences.text.splitlines() == [
        "person_id,preferred,top_category,top,spend,categories,top_share",
        "1,fruit,fruit,235.00,235.00,1,1.0000",
        "2,fruit,fruit,170.00,170.00,1,1.0000",
        "3,fruit,fruit,60.00,60.00,1,1.0000",
        "4,fruit,fruit,10.00,10.00,1,1.0000",
        "6,fruit,fruit,130.00,130.00,1,1.0000",
        "8,fruit,fruit,80.00,80.00,1,1.0000",
        "9,fruit,fruit,25.00,25.00,1,1.0000",
        "11,fruit,fruit,100.00,100.00,1,1.0000",
        "12,fruit,fruit,88.00,88.00,1,1.0000",
    ]
    # One writer: the API returns what the command prints, byte for byte.
    assert run("analyze layers --period 2026-10 --format csv").stdout == layers.text
    assert run("analyze rfm --as-of 2026-10-31 --period 2026-10 --format csv").stdout == rfm.text
    assert run("analyze lifecycle --period 2026-10 --format csv").stdout == lifecycle.text
    assert run("analyze preferences --as-of 2026-10-31 --format csv").stdout == preferences.text


def test_rfm_over_http_takes_the_scoring_parameters(api: Api) -> None:
    cut = api.get("/insight/rfm", role=Role.ANALYST, period="2026-10", class_cuts="7,1,150")
    people = api.get(
        "/insight/rfm/people",
        role=Role.ANALYST,
        period="2026-10",
        recency_cuts="7,30",
        frequency_cuts="1,2",
        monetary_cuts="50,150",
        class_cuts="7,1,150",
    )

    # The classes test_analyze_rfm_with_brand_class_cuts shows for --class-cuts 7,1,150.
    assert cut.status_code == 200, cut.json()
    assert cut.json()["class_cuts"] == {"recency_days": 7, "frequency": 1, "monetary": "150.00"}
    assert {c["class"]: c["people"] for c in cut.json()["classes"] if c["people"]} == {
        "important_value": 1,
        "important_keep": 1,
        "general_develop": 1,
        "general_keep": 1,
        "general_win_back": 3,
    }
    # R scores cut at 7 and 30 days, F at 1 and 2 days, M at ¥50 and ¥150 (test_rfm_with_brand_thresholds).
    assert people.status_code == 200, people.text
    assert people.text.splitlines() == [
        RFM_HEADER,
        "1,6,3,195.00,3,3,3,important_value",
        "2,25,2,170.00,2,2,3,important_keep",
        "3,24,1,60.00,2,1,2,general_win_back",
        "4,0,1,10.00,3,1,1,general_develop",
        "6,28,1,70.00,2,1,2,general_win_back",
        "9,17,1,25.00,2,1,1,general_win_back",
        "11,20,2,100.00,2,2,2,general_keep",
    ]


def test_lifecycle_over_http_takes_the_stage_cycles(api: Api) -> None:
    # Sleeping ends at 3 cycles (90 days): P8, last purchase Aug 1 (91 days), is churned now.
    data = api.get("/insight/lifecycle", role=Role.ANALYST, period="2026-10", stage_cycles="1,1,2,3").json()
    people = api.get("/insight/lifecycle/people", role=Role.ANALYST, period="2026-10", stage_cycles="1,1,2,3")

    assert data["bounds_days"]["sleeping"] == 90
    assert data["stages"] == {
        "registered": 1,
        "new": 5,
        "active": 2,
        "silent": 0,
        "sleeping": 0,
        "churned": 2,
    }
    assert "8,91,91,churned" in people.text.splitlines()


def test_people_over_http_refuse(api: Api) -> None:
    for what in ("rfm", "lifecycle", "layers", "preferences"):
        assert error_of(api.get(f"/insight/{what}/people", role=Role.GUIDE, period="2026-10")) == (
            403,
            "forbidden",
        ), what
        assert api.get(f"/insight/{what}/people", role=None).status_code == 401, what
        assert error_of(api.get(f"/insight/{what}/people", role=Role.ANALYST, period="2026-13")) == (
            422,
            "invalid_period",
        ), what
    bad_cut = api.get("/insight/rfm/people", role=Role.ANALYST, class_cuts="7,1")
    assert error_of(bad_cut) == (422, "invalid_option")
    assert "class_cuts" in bad_cut.json()["error"]["message"]
    descending = api.get("/insight/rfm", role=Role.ANALYST, recency_cuts="30,7")
    assert error_of(descending) == (422, "invalid_option")
    assert "recency_cuts" in descending.json()["error"]["message"]
    assert error_of(api.get("/insight/rfm", role=Role.ANALYST, score_quantiles="2")) == (
        422,
        "invalid_option",
    )
    assert error_of(api.get("/insight/rfm", role=Role.ANALYST, monetary_cuts="x")) == (422, "invalid_option")
    few = api.get("/insight/lifecycle/people", role=Role.ANALYST, stage_cycles="1,2")
    assert error_of(few) == (422, "invalid_option")
    assert "stage_cycles" in few.json()["error"]["message"]
    assert error_of(api.get("/insight/preferences/people", role=Role.ANALYST, min_share="x")) == (
        422,
        "invalid_option",
    )
    # The permission is checked before the parameters: a guide's bad cut is still a 403.
    assert error_of(api.get("/insight/rfm", role=Role.GUIDE, class_cuts="7,1")) == (403, "forbidden")

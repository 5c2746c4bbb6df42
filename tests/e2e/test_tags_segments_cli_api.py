"""``memberops tag|segment …`` and ``/api/v1/tags``, ``/api/v1/segments`` on the hand-worked shop.

The sets are proven in ``tests/integration/test_tags_segments``; here the CLI and the API must give
the same ones, enforce who may do what, answer 4xx for a bad expression and change nothing when
they refuse. Refreshes run as of today, so only expressions that do not move with the date are used.
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
from tests.integration.helpers import counts
from tests.integration.test_insight_analyses import build_shop
from tests.integration.test_tags_segments import build_extras


@pytest.fixture
def shop(services: Services) -> Services:
    build_shop(services.engine)
    build_extras(services)
    return services


@pytest.fixture
def run(shop: Services, monkeypatch: pytest.MonkeyPatch) -> CliRun:
    return cli_runner(shop, monkeypatch)


def test_cli_segment_preview_create_refresh_history_export(run: Any, shop: Services, tmp_path: Path) -> None:
    assert run("segment preview 'tier = \"gold\"'").stdout.strip() == "3 people"
    refused = run("segment preview 'tier = '", status=2)
    assert "invalid_expression" in refused.stderr
    assert "at column 8: expected a value" in refused.stderr

    assert "3 people" in run("segment create gold 'tier = \"gold\"' --refresh hourly").stdout
    listed = json.loads(run("segment list --format json").stdout)
    assert [(s["name"], s["size"], s["refresh"]) for s in listed] == [("gold", 3, "hourly")]
    assert json.loads(run("segment refresh --due --format json").stdout) == []
    assert json.loads(run("segment refresh gold --format json").stdout) == [
        {"name": "gold", "gained": 0, "lost": 0, "holders": 3}
    ]
    history = json.loads(run("segment history gold --format json").stdout)
    assert sorted((h["person_id"], h["change"]) for h in history) == [
        (1, "entered"),
        (11, "entered"),
        (12, "entered"),
    ]

    masked, clear = tmp_path / "masked.csv", tmp_path / "clear.csv"
    run(f"segment export gold {masked}")
    run(f"segment export gold {clear} --reveal")
    phones = [
        [row["phone"] for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))]
        for path in (masked, clear)
    ]
    assert phones == [
        ["138****0001", "138****0011", "138****0012"],
        ["13800000001", "13800000011", "13800000012"],
    ]


def test_cli_refuses_a_bad_segment_and_changes_nothing(run: Any, shop: Services) -> None:
    before = counts(shop)

    result = run("segment create broken 'bought(days=90) >= 2 and'", status=2)
    assert "at column 25: expected a name" in result.stderr
    assert (
        run("segment create nowhere 'tag(\"missing\")'", status=2).stderr.count("no tag named 'missing'") == 1
    )
    run("segment refresh", status=2)
    assert counts(shop) == before


def test_cli_tags(run: Any) -> None:
    run("tag create vip --description 'VIP by hand'")
    assert "now holds" in run("tag set vip person:11 --note 'big order'").stdout
    assert "already held" in run("tag set vip person:11").stdout
    assert "1 people hold" in run('tag create gold_vip --rule \'tier = "gold" and tag("vip")\'').stdout
    run("tag set gold_vip person:1", status=2)

    shown = json.loads(run("tag show person:11 --format json").stdout)
    assert [(t["tag"], t["source"]) for t in shown["tags"]] == [("gold_vip", "rule"), ("vip", "manual")]
    assert "no longer holds" in run("tag remove vip person:11").stdout
    refreshed = json.loads(run("tag refresh --format json").stdout)
    assert refreshed == [{"name": "gold_vip", "gained": 0, "lost": 1, "holders": 0}]
    history = json.loads(run("tag history --person person:11 --format json").stdout)
    assert [(h["tag"], h["change"], h["source"], h["by"]) for h in reversed(history)] == [
        ("vip", "gained", "manual", "cli"),
        ("gold_vip", "gained", "rule", "cli"),
        ("vip", "lost", "manual", "cli"),
        ("gold_vip", "lost", "rule", "cli"),
    ]
    assert "koc_candidates" in run("segment ready-made").stdout


@pytest.fixture
def api(shop: Services) -> Api:
    return start_api(shop)


def test_api_preview_and_bad_expressions(api: Api) -> None:
    good = api.post("/segments/preview", {"expression": 'tier in ("gold", "silver")'}, Role.ANALYST)
    bad = api.post("/segments/preview", {"expression": 'tier in ("gold" and x'}, Role.ANALYST)

    assert (good.status_code, good.json()["people"]) == (200, 4)
    assert error_of(bad) == (422, "invalid_expression")
    assert bad.json()["error"]["message"] == 'at column 17: expected ")", found "and"'
    assert bad.json()["error"]["details"] == {"column": 17, "expected": '")"', "found": "and"}
    assert error_of(api.post("/segments/preview", {"expression": "member"}, Role.GUIDE)) == (403, "forbidden")


def test_api_segments_by_role(api: Api) -> None:
    body = {"name": "gold", "expression": 'tier = "gold"', "refresh": "daily"}
    before = api.counts()

    assert error_of(api.post("/segments", body, Role.ANALYST)) == (403, "forbidden")
    assert error_of(api.post("/segments", body | {"expression": "tier ="}, Role.OPERATOR)) == (
        422,
        "invalid_expression",
    )
    assert error_of(api.post("/segments", body | {"refresh": "weekly"}, Role.OPERATOR)) == (
        422,
        "validation_failed",
    )
    assert api.counts() == before
    created = api.post("/segments", body, Role.OPERATOR)
    assert (created.status_code, created.json()["size"]) == (201, 3)
    assert error_of(api.post("/segments", body, Role.OPERATOR)) == (409, "conflict")

    assert [s["name"] for s in api.get("/segments", Role.ANALYST).json()] == ["gold"]
    assert api.post("/segments/gold/refresh", {}, Role.OPERATOR).json() == {
        "name": "gold",
        "gained": 0,
        "lost": 0,
        "holders": 3,
    }
    assert api.post("/segments/refresh-due", {}, Role.OPERATOR).json() == []
    history = api.get("/segments/gold/history", Role.ANALYST).json()
    assert sorted(h["person_id"] for h in history if h["change"] == "entered") == [1, 11, 12]
    assert error_of(api.get("/segments/nope/history", Role.ANALYST)) == (404, "not_found")


def test_api_export_masks_by_role(api: Api) -> None:
    api.post("/segments", {"name": "gold", "expression": 'tier = "gold"'}, Role.OPERATOR)

    def phones(role: Role) -> list[str]:
        response = api.get("/segments/gold/export", role)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        return [row["phone"] for row in csv.DictReader(io.StringIO(response.text))]

    assert phones(Role.ANALYST) == ["138****0001", "138****0011", "138****0012"]
    assert phones(Role.ADMIN) == ["13800000001", "13800000011", "13800000012"]
    assert error_of(api.get("/segments/gold/export", Role.GUIDE)) == (403, "forbidden")
    exported = [entry for entry in api.audit_actions() if entry[1] == "segment.exported"]
    assert [actor for actor, _, _ in exported] == ["analyst", "admin"]


def test_api_tags_by_role(api: Api) -> None:
    assert api.post("/tags", {"name": "helped", "guides_may_set": True}, Role.OPERATOR).status_code == 201
    assert api.post("/tags", {"name": "vip"}, Role.OPERATOR).status_code == 201
    rule = api.post("/tags", {"name": "gold", "expression": 'tier = "gold"'}, Role.OPERATOR)
    assert (rule.status_code, rule.json()["holders"], rule.json()["kind"]) == (201, 3, "rule")
    before = api.counts()

    assert error_of(api.post("/tags", {"name": "x"}, Role.ANALYST)) == (403, "forbidden")
    assert error_of(api.post("/tags", {"name": "y", "expression": "gold and"}, Role.OPERATOR)) == (
        422,
        "invalid_expression",
    )
    assert error_of(api.client.put("/api/v1/tags/vip/persons/4", headers=api.headers(Role.GUIDE))) == (
        403,
        "forbidden",
    )
    assert error_of(api.client.put("/api/v1/tags/gold/persons/4", headers=api.headers(Role.OPERATOR))) == (
        409,
        "conflict",
    )
    assert error_of(api.client.put("/api/v1/tags/helped/persons/999", headers=api.headers(Role.GUIDE))) == (
        404,
        "not_found",
    )
    assert api.counts() == before

    put = api.client.put("/api/v1/tags/helped/persons/7", headers=api.headers(Role.GUIDE))
    assert put.json() == {"tag": "helped", "person_id": 7, "holds": True, "changed": True}
    held = api.get("/persons/1/tags", Role.GUIDE).json()
    assert (held["person_id"], [t["tag"] for t in held["tags"]]) == (1, ["gold", "helped"])
    assert api.delete("/tags/helped/persons/1", Role.GUIDE).json()["changed"] is True
    assert [t["name"] for t in api.get("/tags", Role.GUIDE).json()] == ["gold", "helped", "vip"]
    history = api.get("/tags/helped/history", Role.ANALYST).json()
    assert [(h["person_id"], h["change"], h["by"]) for h in history] == [
        (1, "lost", "guide"),
        (1, "gained", "guide"),
    ]
    assert error_of(api.get("/tags/helped/history", Role.GUIDE)) == (403, "forbidden")
    assert api.post("/tags/refresh", {}, Role.OPERATOR).json() == [
        {"name": "gold", "gained": 0, "lost": 0, "holders": 3}
    ]
    assert error_of(api.post("/tags/refresh", {"names": ["helped"]}, Role.OPERATOR)) == (409, "conflict")

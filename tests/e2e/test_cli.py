"""The command line as a user runs it: a real process, its exit status, its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET

POS_EXPORT = """单号,支付时间,实收金额,门店编码,会员手机,会员卡号,状态,退款金额,商品明细
P1,2026-03-01 12:00:00,20.50,SH001,138-0013-8000,,已支付,,"[{""sku"":""D1"",""category"":""榴莲"",""qty"":1,""amount"":""20.50""}]"
P2,2026-03-02 12:00:00,10.00,SH001,+86 138 0013 8000,C001,已退款,,
P3,2026-03-02 13:00:00,abc,SH001,13800138000,,已支付,,
P4,2026-03-02 13:00:00,5.00,SH999,13800138000,,已支付,,
"""


def memberops(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MEMBEROPS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "MEMBEROPS_SECRET_KEY": TEST_SECRET,
    }
    return subprocess.run(
        [sys.executable, "-m", "memberops", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def loaded(tmp_path: Path) -> Path:
    (tmp_path / "stores.csv").write_text(
        "code,name,city,store_type\nSH001,徐汇店,上海,community\n", encoding="utf-8"
    )
    (tmp_path / "pos.csv").write_text(POS_EXPORT, encoding="utf-8")
    assert memberops(tmp_path, "import", "stores", "stores.csv").returncode == 0
    return tmp_path


def test_import_reports_rejects_and_exits_3_and_a_rerun_adds_nothing(loaded: Path) -> None:
    first = memberops(loaded, "import", "orders", "pos.csv", "--profile", "pos", "--format", "json")
    assert first.returncode == 3
    summary = json.loads(first.stdout)
    assert {k: summary[k] for k in ("rows", "imported", "duplicates", "rejected")} == {
        "rows": 4,
        "imported": 2,
        "duplicates": 0,
        "rejected": 2,
    }
    rejects = (loaded / "pos.csv.rejects.csv").read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[:2] for line in rejects[1:]] == [
        ["4", "amount: 'abc' is not a number"],
        ["5", "store 'SH999' is not a known store"],
    ]
    again = json.loads(
        memberops(loaded, "import", "orders", "pos.csv", "--profile", "pos", "--format", "json").stdout
    )
    assert (again["imported"], again["duplicates"], again["rejected"]) == (0, 2, 2)


def test_person_show_finds_the_person_by_any_format_of_the_phone(loaded: Path) -> None:
    memberops(loaded, "import", "orders", "pos.csv", "--profile", "pos")
    shown = memberops(loaded, "person", "show", "13800138000", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    person = json.loads(shown.stdout)
    assert person["person_id"] == 1
    assert [(i["type"], i["value"]) for i in person["identifiers"]] == [
        ("phone", "138****8000"),
        ("member_no", "C***"),
    ]
    assert [(o["source"], o["external_id"], o["amount"], o["refunded"]) for o in person["orders"]] == [
        ("pos", "P2", "10.00", "10.00"),
        ("pos", "P1", "20.50", "0.00"),
    ]
    revealed = json.loads(
        memberops(loaded, "person", "show", "member_no:C001", "--format", "json", "--reveal").stdout
    )
    assert revealed["identifiers"][0]["value"] == "+8613800138000"


def test_unknown_people_and_unusable_files_exit_2_with_a_message(loaded: Path) -> None:
    missing = memberops(loaded, "person", "show", "13900139000")
    assert missing.returncode == 2
    assert "no person is known by '13900139000'" in missing.stderr
    (loaded / "bad.csv").write_text("foo,bar\n1,2\n", encoding="utf-8")
    unusable = memberops(loaded, "import", "orders", "bad.csv")
    assert unusable.returncode == 2
    assert "bad.csv: missing required column(s) external_id, paid_at, amount, source" in unusable.stderr
    assert "0/1" not in unusable.stderr  # refused before any progress is shown


def test_api_keys_are_created_once_and_listed_by_prefix(tmp_path: Path) -> None:
    created = memberops(tmp_path, "apikey", "create", "--name", "pos", "--role", "operator")
    assert created.returncode == 0
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("mo_")
    listed = json.loads(memberops(tmp_path, "apikey", "list", "--format", "json").stdout)
    assert [(k["name"], k["role"], k["prefix"]) for k in listed] == [("pos", "operator", key[:11])]
    assert memberops(tmp_path, "apikey", "create", "--name", "x", "--role", "boss").returncode == 2


def test_merges_can_be_listed_and_undone(tmp_path: Path) -> None:
    (tmp_path / "orders.jsonl").write_text(
        "\n".join(
            json.dumps(
                {
                    "source": "pos",
                    "external_id": e,
                    "paid_at": "2026-03-01T12:00:00+08:00",
                    "amount": "1.00",
                    **ids,
                }
            )
            for e, ids in [
                ("A", {"phone": "13800138000"}),
                ("B", {"unionid": "oU1"}),
                ("C", {"phone": "13800138000", "unionid": "oU1"}),
            ]
        ),
        encoding="utf-8",
    )
    assert memberops(tmp_path, "import", "orders", "orders.jsonl").returncode == 0
    merges = json.loads(memberops(tmp_path, "identity", "merges", "--format", "json").stdout)
    assert [(m["id"], m["survivor_id"], m["absorbed_id"], m["identifier_type"]) for m in merges] == [
        (1, 1, 2, "unionid")
    ]
    undone = memberops(tmp_path, "identity", "undo", "1", "--reason", "test")
    assert undone.returncode == 0
    person = json.loads(memberops(tmp_path, "person", "show", "unionid:oU1", "--format", "json").stdout)
    assert person["person_id"] == 2
    assert [o["external_id"] for o in person["orders"]] == ["B"]


@pytest.mark.slow
def test_the_demo_loads_a_brand_and_scores_oneid(tmp_path: Path) -> None:
    result = memberops(tmp_path, "demo", "--members", "400", "--no-serve", "--end-date", "2026-10-31")
    assert result.returncode == 0, result.stderr
    assert "API key (role admin)" in result.stdout
    accuracy = json.loads((tmp_path / "demo-data" / "oneid-accuracy.json").read_text())
    assert accuracy["precision"] == 1.0
    assert accuracy["recall"] >= 0.99
    scored = json.loads(memberops(tmp_path, "identity", "accuracy", "--format", "json").stdout)
    assert scored == accuracy
    # The living programme and the insight step, as of the history's last day (deterministic for the seed).
    assert "ledger check: no problem" in result.stdout
    assert "tags: durian_fan 2, big_spender 15, group_member 101" in result.stdout
    assert (
        "segments: expired_paid_plan 6, koc_candidates 20, one_time_buyers 61, sleeping_gold 0"
        in result.stdout
    )
    assert "layers 2026-10: connected 192, member_not_purchased 323, purchased 48, repurchase 19, koc 3" in (
        result.stdout
    )
    # The demo brand's paid plans are order lines of their own category, no product to prefer.
    settings_file = tmp_path / "demo-data" / "insight.toml"
    assert f"export MEMBEROPS_INSIGHT_FILE={settings_file}" in result.stdout
    assert 'preference_excluded_categories = ["paid_plan"]' in settings_file.read_text()
    preferences = json.loads(
        memberops(
            tmp_path, "analyze", "preferences", "--format", "json", "--config", str(settings_file)
        ).stdout
    )
    assert preferences["excluded_categories"] == ["paid_plan"]
    assert "paid_plan" not in [item["category"] for item in preferences["categories"]]
    listed = json.loads(memberops(tmp_path, "segment", "list", "--format", "json").stdout)
    assert sorted(segment["name"] for segment in listed) == [
        "expired_paid_plan",
        "koc_candidates",
        "one_time_buyers",
        "sleeping_gold",
    ]


def test_a_new_channel_is_accepted_once_registered(tmp_path: Path) -> None:
    line = {"source": "jd", "external_id": "J1", "paid_at": "2026-03-01T12:00:00+08:00", "amount": "1.00"}
    (tmp_path / "jd.jsonl").write_text(json.dumps(line), encoding="utf-8")
    assert memberops(tmp_path, "import", "orders", "jd.jsonl").returncode == 3
    assert (
        memberops(tmp_path, "channel", "add", "jd", "--name", "京东 / JD.com", "--kind", "sales").returncode
        == 0
    )
    assert memberops(tmp_path, "channel", "add", "jd", "--name", "again").returncode == 2
    assert memberops(tmp_path, "channel", "add", "JD!", "--name", "bad").returncode == 2
    assert memberops(tmp_path, "import", "orders", "jd.jsonl").returncode == 0
    codes = [c["code"] for c in json.loads(memberops(tmp_path, "channel", "list", "--format", "json").stdout)]
    assert "jd" in codes and "pos" in codes

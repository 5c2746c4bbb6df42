"""The loyalty commands as an operator runs them: a real process, its exit status, its output."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import pytest

from .test_cli import memberops

EVENTS = [
    {
        "type": "register",
        "occurred_at": "2026-01-01T10:00:00+08:00",
        "field": "pos",
        "phone": "13800138000",
        "member_no": "C1",
        "external_id": "reg-1",
    },
]
ORDERS = """source,external_id,paid_at,amount,phone
pos,A1,2026-03-02T12:00:00+08:00,105.00,13800138000
pos,A2,2026-03-03T12:00:00+08:00,3000.00,13800138000
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the demo programme applied, one member and two orders (10 + 300 points + gift 100)."""
    tmp_path = tmp_path_factory.mktemp("loyalty-cli")
    programme = resources.files("memberops.loyalty").joinpath("demo_programme.toml").read_text("utf-8")
    (tmp_path / "programme.toml").write_text(programme, encoding="utf-8")
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e) for e in EVENTS) + "\n", encoding="utf-8")
    (tmp_path / "orders.csv").write_text(ORDERS, encoding="utf-8")
    applied = memberops(tmp_path, "programme", "apply", "programme.toml")
    assert applied.returncode == 0, applied.stderr
    assert "programme 2026.1" in applied.stdout and "applied" in applied.stdout
    assert memberops(tmp_path, "import", "events", "events.jsonl").returncode == 0
    imported = memberops(tmp_path, "import", "orders", "orders.csv")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    return tmp_path


@pytest.fixture
def brand(template: Path, tmp_path: Path) -> Path:
    """A copy of the template database for one test (built once: each command is a new process)."""
    for name in ("cli.db", "cli.db-wal", "cli.db-shm"):
        if (template / name).exists():
            shutil.copyfile(template / name, tmp_path / name)
    return tmp_path


def balance(brand: Path) -> dict[str, object]:
    shown = memberops(brand, "points", "balance", "member_no:C1", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


def test_imported_orders_earn_and_the_balance_is_shown_by_any_identifier(brand: Path) -> None:
    by_phone = memberops(brand, "points", "balance", "13800138000", "--format", "json")

    assert json.loads(by_phone.stdout) == balance(brand)
    assert balance(brand)["balance"] == 410
    history = memberops(brand, "points", "history", "person:1", "--format", "json")
    assert [(e["kind"], e["delta"]) for e in json.loads(history.stdout)] == [
        ("gift", 100),
        ("earn", 300),
        ("earn", 10),
    ]


def test_a_redemption_beyond_the_balance_fails_clearly_and_changes_nothing(brand: Path) -> None:
    refused = memberops(brand, "points", "redeem", "member_no:C1", "411", "--key", "till-1")

    assert refused.returncode != 0
    assert "insufficient_points" in refused.stderr
    assert "the balance is 410 points, less than the 411 points asked for" in refused.stderr
    assert balance(brand)["balance"] == 410
    ok = memberops(brand, "points", "redeem", "member_no:C1", "400", "--key", "till-1")
    again = memberops(brand, "points", "redeem", "member_no:C1", "400", "--key", "till-1")
    assert ok.returncode == 0 and again.returncode == 0, ok.stderr + again.stderr
    assert ok.stdout == again.stdout
    assert balance(brand)["balance"] == 10


def test_adjust_with_a_key_is_applied_once_and_a_negative_amount_follows_the_options(brand: Path) -> None:
    for _ in range(2):
        added = memberops(
            brand, "points", "adjust", "13800138000", "50", "--reason", "goodwill", "--key", "k1"
        )
        assert added.returncode == 0, added.stderr
    removed = memberops(brand, "points", "adjust", "--reason", "correction", "--", "13800138000", "-20")

    assert removed.returncode == 0, removed.stderr
    assert balance(brand)["balance"] == 440
    unknown = memberops(brand, "points", "adjust", "13900139000", "5", "--reason", "x")
    assert unknown.returncode != 0 and "no person is known" in unknown.stderr


def test_tier_show_says_what_it_takes_and_check_passes(brand: Path) -> None:
    shown = memberops(brand, "tier", "show", "member_no:C1")
    checked = memberops(brand, "loyalty", "check")

    assert shown.returncode == 0, shown.stderr
    assert "银卡 Silver (silver)" in shown.stdout
    assert "2895 to next tier (gold)" in shown.stdout
    assert checked.returncode == 0, checked.stderr
    assert "ledger ok" in checked.stdout


def test_check_fails_when_a_cache_disagrees(brand: Path) -> None:
    import sqlite3

    with sqlite3.connect(brand / "cli.db") as connection:
        connection.execute("UPDATE points_accounts SET balance = balance + 1")

    checked = memberops(brand, "loyalty", "check")

    assert checked.returncode == 1
    assert "cached balance 411" in checked.stderr


def test_jobs_run_and_a_replay_finds_nothing_left(brand: Path) -> None:
    expired = memberops(brand, "loyalty", "expire")
    evaluated = memberops(brand, "loyalty", "evaluate-tiers", "--on", "2026-11-01")
    replayed = memberops(brand, "loyalty", "replay", "--format", "json")
    shown = memberops(brand, "programme", "show", "--format", "json")

    assert expired.returncode == 0 and "expired 0 points" in expired.stdout, expired.stderr
    assert evaluated.returncode == 0, evaluated.stderr
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["earned"] == 0
    assert json.loads(shown.stdout)["version"] == "2026.1"


def test_a_growth_task_is_rewarded_once_and_past_its_limit_the_command_is_refused(brand: Path) -> None:
    done = memberops(brand, "tier", "task", "member_no:C1", "first_review", "--key", "r1", "--format", "json")
    again = memberops(brand, "tier", "task", "member_no:C1", "first_review", "--key", "r1")
    refused = memberops(brand, "tier", "task", "member_no:C1", "first_review", "--key", "r2")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "person_id": 1,
        "task": "first_review",
        "growth": 30,
        "points": 10,
        "created": True,
    }
    assert (again.returncode, again.stdout.strip()) == (
        0,
        "task first_review already rewarded (nothing changed): 30 growth, 10 points",
    )
    assert refused.returncode == 2  # EXIT_REFUSED
    assert 'growth task "first_review" is rewarded once per member' in refused.stderr
    assert balance(brand)["balance"] == 420

"""Bulk import from files: formats, profiles, rejects with line numbers, reruns, and a kill half-way."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, select, text

from memberops.ingest.bulk import import_file
from memberops.kit.db import make_engine, unit_of_work
from memberops.kit.errors import ValidationFailed
from memberops.models import Order
from memberops.wiring import Services
from tests.conftest import POSTGRES_URL, TEST_SECRET
from tests.integration.helpers import counts

HEADER = [
    "source",
    "external_id",
    "paid_at",
    "amount",
    "phone",
    "openid",
    "unionid",
    "member_no",
    "status",
    "items",
]


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] = HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(external_id: str, **fields: str) -> dict[str, str]:
    return {
        "source": "pos",
        "external_id": external_id,
        "paid_at": "2026-03-01T12:00:00+08:00",
        "amount": "10.00",
        **fields,
    }


def test_csv_import_reports_each_rejected_row_with_its_line_and_imports_the_rest(
    services: Services, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "orders.csv",
        [
            row("A", phone="13800138000"),
            row("B", amount="abc"),
            row(
                "C", phone="138-0013-8000", items='[{"sku":"D1","category":"榴莲","qty":1,"amount":"10.00"}]'
            ),
            row("D", paid_at=""),
            row("A", phone="13800138000"),
            row("E", phone="1380013800"),
        ],
    )
    summary = import_file(services, path, "orders")
    assert (summary.rows, summary.imported, summary.duplicates, summary.rejected) == (6, 2, 1, 3)
    with summary.reject_path.open(encoding="utf-8") as handle:  # type: ignore[union-attr]
        rejected = [
            (r["line"], r["reason"], json.loads(r["row"])["external_id"]) for r in csv.DictReader(handle)
        ]
    assert rejected == [
        ("3", "amount: 'abc' is not a number", "B"),
        ("5", "paid_at is missing", "D"),
        ("7", "phone '1380013800' is not a valid phone number", "E"),
    ]
    assert counts(services)["orders"] == 2
    assert counts(services)["order_lines"] == 1


def test_importing_the_same_file_twice_adds_nothing(services: Services, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "orders.csv", [row(str(i), phone=f"1380013{i:04d}") for i in range(50)])
    first = import_file(services, path, "orders", batch_size=7)
    before = counts(services)
    second = import_file(services, path, "orders", batch_size=7)
    assert (first.imported, second.imported, second.duplicates) == (50, 0, 50)
    assert counts(services) == before
    assert not (tmp_path / "orders.csv.rejects.csv").exists()


def test_jsonl_and_parquet_files_import_like_csv(services: Services, tmp_path: Path) -> None:
    jsonl = tmp_path / "orders.jsonl"
    jsonl.write_text(
        "\n".join(
            [json.dumps(row("J1", phone="13800138000")), "{not json", json.dumps(row("J2", unionid="oU1"))]
        )
        + "\n",
        encoding="utf-8",
    )
    summary = import_file(services, jsonl, "orders")
    assert (summary.imported, summary.rejected) == (2, 1)
    parquet = tmp_path / "orders.parquet"
    pq.write_table(pa.Table.from_pylist([row("Q1", phone="13800138000"), row("Q2", amount="-1")]), parquet)
    summary = import_file(services, parquet, "orders")
    assert (summary.imported, summary.rejected) == (1, 1)
    assert counts(services)["orders"] == 3


def test_a_channel_export_imports_through_its_profile(services: Services, tmp_path: Path) -> None:
    header = ["订单编号", "订单付款时间", "实付金额", "手机号", "买家ID", "订单状态", "退款金额", "商品明细"]
    path = write_csv(
        tmp_path / "tmall.csv",
        [
            {
                "订单编号": "T1",
                "订单付款时间": "2026-11-11 00:05:00",
                "实付金额": "99.00",
                "买家ID": "tb_1",
                "订单状态": "交易成功",
            },
            {
                "订单编号": "T2",
                "订单付款时间": "2026-11-11 00:06:00",
                "实付金额": "20.00",
                "买家ID": "tb_1",
                "手机号": "13800138000",
                "订单状态": "交易关闭",
            },
            {
                "订单编号": "T3",
                "订单付款时间": "2026-11-11 00:07:00",
                "实付金额": "20.00",
                "买家ID": "tb_2",
                "订单状态": "等待付款",
            },
        ],
        header,
    )
    summary = import_file(services, path, "orders", profile="tmall")
    assert (summary.imported, summary.rejected) == (2, 1)
    with unit_of_work(services.read_sessions) as session:
        rows = session.execute(
            select(Order.external_id, Order.person_id, Order.paid_at).order_by(Order.external_id)
        ).all()
        refund = session.execute(text("SELECT amount_fen FROM refunds")).scalar_one()
    assert [(r[0], r[1]) for r in rows] == [("T1", 1), ("T2", 1)]
    assert rows[0][2].isoformat() == "2026-11-10T16:05:00+00:00"
    assert refund == 2000


def test_an_unusable_file_writes_nothing(services: Services, tmp_path: Path) -> None:
    before = counts(services)
    missing_column = write_csv(tmp_path / "bad.csv", [{"source": "pos"}], ["source"])
    with pytest.raises(ValidationFailed, match="missing required column"):
        import_file(services, missing_column, "orders")
    spreadsheet = tmp_path / "orders.xlsx"
    spreadsheet.write_bytes(b"PK")
    with pytest.raises(ValidationFailed, match=r"unknown format '\.xlsx'"):
        import_file(services, spreadsheet, "orders")
    assert counts(services) == before


def test_stores_and_events_import(services: Services, tmp_path: Path) -> None:
    stores = write_csv(
        tmp_path / "stores.csv",
        [
            {"code": "SH001", "name": "徐汇店", "city": "上海", "store_type": "community"},
            {"code": "SH002", "name": "", "city": "上海", "store_type": "mall"},
        ],
        ["code", "name", "city", "store_type"],
    )
    summary = import_file(services, stores, "stores")
    assert (summary.imported, summary.rejected) == (1, 1)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            json.dumps(e, ensure_ascii=False)
            for e in [
                {
                    "type": "register",
                    "occurred_at": "2026-03-01T10:00:00+08:00",
                    "field": "pos",
                    "phone": "13800138000",
                    "member_no": "C1",
                    "attributes": {"store": "SH001"},
                },
                {
                    "type": "review",
                    "occurred_at": "2026-03-02T10:00:00+08:00",
                    "field": "mini_program",
                    "openid": "oX",
                    "attributes": {"sku": "D1", "rating": 9},
                },
            ]
        ),
        encoding="utf-8",
    )
    summary = import_file(services, events, "events")
    assert (summary.imported, summary.rejected) == (1, 1)
    assert counts(services)["memberships"] == 1


# --------------------------------------------------------------------------- kill half-way


def messy_orders(path: Path, count: int) -> Path:
    """Orders whose identities link across rows: phones in two formats, openids, cards, merges."""
    rows = []
    for i in range(count):
        person = i % (count // 5)
        phone = f"139{person:08d}"
        fields: dict[str, str] = {}
        if i % 3 == 0:
            fields["phone"] = phone if i % 2 else f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
        elif i % 3 == 1:
            fields["openid"] = f"o{person}"
            fields["source"] = "mini_program"
            if i % 7 == 0:
                fields["phone"] = phone
        else:
            fields["member_no"] = f"C{person}"
            if i % 5 == 0:
                fields["phone"] = phone
        rows.append(row(f"X{i}", **fields))
    return write_csv(path, rows)


def logical_state(engine: Engine) -> tuple[object, ...]:
    """The database content without surrogate ids: orders grouped by person, labelled by content."""
    with engine.connect() as connection:
        orders = connection.execute(
            text("SELECT source, external_id, amount_fen, person_id FROM orders")
        ).all()
        identifiers = connection.execute(
            text("SELECT kind, namespace, masked, person_id FROM identifiers")
        ).all()
        live = connection.execute(
            text("SELECT count(*) FROM persons WHERE merged_into_id IS NULL")
        ).scalar_one()
        merges = connection.execute(text("SELECT count(*) FROM identity_merges")).scalar_one()
    label: dict[int, str] = {}
    for source, external_id, _, person in sorted(orders, key=lambda r: (r[0], r[1])):
        if person is not None:
            label.setdefault(person, f"{source}/{external_id}")
    return (
        sorted((s, e, a, label.get(p, "guest")) for s, e, a, p in orders),
        sorted((k, n, m, label.get(p, "no orders")) for k, n, m, p in identifiers),
        live,
        merges,
    )


def run_import(
    database_url: str, path: Path, *, kill_after_orders: int | None = None, background: bool = False
) -> None:
    env = {**os.environ, "MEMBEROPS_DATABASE_URL": database_url, "MEMBEROPS_SECRET_KEY": TEST_SECRET}
    where = "--parse-in-background" if background else "--parse-in-process"
    command = [sys.executable, "-m", "memberops", "import", "orders", str(path), where]
    if kill_after_orders is None:
        subprocess.run(command, env=env, check=True, capture_output=True)
        return
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = make_engine(database_url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with engine.connect() as connection:
                    done = connection.execute(text("SELECT count(*) FROM orders")).scalar_one()
            except Exception:  # the schema may not exist yet
                done = 0
            if done >= kill_after_orders:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        process.wait()
    finally:
        engine.dispose()
    assert process.returncode == -signal.SIGKILL, "the import finished before it could be killed"
    # a worker parsing for the killed import notices and stops (within its polling interval)
    deadline = time.monotonic() + 15
    while importing(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not importing(path), "a process parsing the killed import's file is still running"


def importing(path: Path) -> list[int]:
    """The processes whose command line names ``path`` (an import of it, or its parsing worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # it ended while we looked
                continue
    return found


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'killed.db'}", f"sqlite:///{tmp_path / 'whole.db'}"
        return
    names = [f"mo_kill_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f"CREATE DATABASE {name}"))
    base = POSTGRES_URL.rsplit("/", 1)[0]
    yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


@pytest.mark.slow
def test_an_import_killed_half_way_and_run_again_ends_as_one_uninterrupted_run(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    # the killed run parses in a worker process (as a big file would), the whole run in-process
    killed_url, whole_url = two_databases
    path = messy_orders(tmp_path / "orders.csv", 24_000)
    run_import(killed_url, path, kill_after_orders=4_000, background=True)
    run_import(killed_url, path, background=True)
    run_import(whole_url, path)
    killed, whole = make_engine(killed_url), make_engine(whole_url)
    try:
        assert logical_state(killed) == logical_state(whole)
        with killed.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM orders")).scalar_one() == 24_000
    finally:
        killed.dispose()
        whole.dispose()


def test_parsing_in_a_worker_process_gives_the_same_import(services: Services, tmp_path: Path) -> None:
    from memberops.kit import migrate
    from memberops.wiring import build_services

    path = messy_orders(tmp_path / "orders.csv", 900)
    with path.open("a", encoding="utf-8") as handle:  # rejected rows, by the parser and by the store
        handle.write("pos,BAD1,2026-03-01T12:00:00+08:00,10.00,1380013800,,,,paid,\n")
        handle.write("nowhere,BAD2,2026-03-01T12:00:00+08:00,10.00,13800138000,,,,paid,\n")
    here = import_file(services, path, "orders", batch_size=100, background_parse=False)
    rejects_here = here.reject_path.read_text() if here.reject_path else ""
    worker_engine = make_engine(f"sqlite:///{tmp_path / 'worker.db'}")
    migrate.upgrade(worker_engine)
    worker = build_services(services.settings, engine=worker_engine, vault=services.vault)
    try:
        there = import_file(worker, path, "orders", batch_size=100, background_parse=True)
        assert (there.rows, there.imported, there.rejected, there.reasons) == (
            902,
            900,
            2,
            {"phone": 1, "source": 1},
        )
        assert (here.rows, here.imported, here.rejected, here.reasons) == (
            there.rows,
            there.imported,
            there.rejected,
            there.reasons,
        )
        assert there.reject_path is not None and there.reject_path.read_text() == rejects_here
        assert logical_state(services.engine) == logical_state(worker_engine)
    finally:
        worker_engine.dispose()


def test_batch_boundaries_do_not_change_the_outcome(services: Services, tmp_path: Path) -> None:
    from memberops.kit import migrate
    from memberops.wiring import build_services

    path = messy_orders(tmp_path / "orders.csv", 600)
    import_file(services, path, "orders", batch_size=1000)
    one_by_one_engine = make_engine(f"sqlite:///{tmp_path / 'one-by-one.db'}")
    migrate.upgrade(one_by_one_engine)
    one_by_one = build_services(services.settings, engine=one_by_one_engine, vault=services.vault)
    import_file(one_by_one, path, "orders", batch_size=1)
    try:
        assert logical_state(services.engine) == logical_state(one_by_one_engine)
    finally:
        one_by_one_engine.dispose()

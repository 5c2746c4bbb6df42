"""Earning points and growth for imported orders against a raw insert of the ledger rows it wrote.

*Ours* is what a brand runs after loading its history: ``LoyaltyService.replay``, which earns
points and growth for every order of a member in payment order (the demo fruit-chain programme:
1 point per 10 yuan, tier multipliers, member day, caps), creates the points lots, upgrades tiers
as growth accrues, takes points back for refunds, and runs expiry and tier evaluation at every
downgrade date history crosses. The members (register events) and the orders are imported
first, untimed.

*Raw* inserts exactly the ledger rows ours wrote (accounts, entries, lots, allocations, order
earnings, refund take-backs, growth entries, member tiers, tier history), read back from ours'
database, with plain Core ``insert()`` executemany; the persons, orders and other rows they refer
to go in first, untimed (``benchmarks.raw_copy``).

Each measured run is a child process on a fresh database. As a module, this file is that child.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from benchmarks.data import OrderData, ensure_members
from benchmarks.databases import BENCH_SECRET, bench_vault, checkpoint_postgres, drop_database, fresh_database
from benchmarks.raw_copy import copy_rows, cpu_s, status_mb
from benchmarks.report import fmt_int, stamp
from memberops.ingest.bulk import import_file
from memberops.kit.db import make_engine, unit_of_work
from memberops.kit.settings import Settings
from memberops.loyalty import jobs
from memberops.loyalty.programme import demo_programme
from memberops.models import Base
from memberops.wiring import build_services

#: The tables earning writes (upgrade gifts issue coupons too); raw times inserting exactly these.
LEDGER_TABLES = (*jobs.LEDGER_TABLES, "coupons")


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            tables = Base.metadata.tables
            return {
                name: int(connection.scalar(select(func.count()).select_from(tables[name])) or 0)
                for name in (*LEDGER_TABLES, "orders", "memberships")
            }
    finally:
        engine.dispose()


def child_ours(url: str, orders_csv: Path, members_csv: Path) -> dict[str, Any]:
    """Import members and orders (untimed), apply the demo programme, then time the replay."""
    services = build_services(
        Settings(database_url=url, secret_key=BENCH_SECRET), engine=make_engine(url), vault=bench_vault()
    )
    import_file(services, members_csv, "events")
    import_file(services, orders_csv, "orders")
    with unit_of_work(services.sessions) as session:
        services.loyalty.apply_programme(session, demo_programme(), actor="benchmark")
    print("    ours: history imported, programme applied; replaying", file=sys.stderr, flush=True)
    started, cpu = time.perf_counter(), cpu_s()
    report = services.loyalty.replay(services.sessions)
    seconds, cpu = time.perf_counter() - started, cpu_s() - cpu
    services.engine.dispose()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_rss_mb": status_mb("VmHWM"),
        "report": {name: getattr(report, name) for name in vars(report)},
        "counts": _counts(url),
    }


def child_raw(url: str, source_url: str) -> dict[str, Any]:
    """Insert the ledger rows ours wrote (and, untimed, what they refer to) with Core executemany."""
    copied = copy_rows(url, source_url, LEDGER_TABLES)
    return {**copied, "peak_rss_mb": status_mb("VmHWM"), "counts": _counts(url)}


def _run_child(args: list[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.loyalty_replay", *args]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@dataclass(frozen=True)
class ReplayComparison:
    """Ours and raw on one backend, with the check that raw inserted what ours wrote."""

    backend: str
    data: OrderData
    ours: dict[str, Any]
    raw: dict[str, Any]

    @property
    def ledger_rows(self) -> int:
        return sum(self.ours["counts"][name] for name in LEDGER_TABLES)

    @property
    def ratio(self) -> float:
        """Ours over raw in ledger rows a second (1.0: as fast as inserting them)."""
        return float(self.raw["seconds"] / self.ours["seconds"])


def compare(backend: str, data: OrderData, workdir: Path) -> ReplayComparison:
    """Replay on a fresh database of ``backend``, then copy its rows into another for raw."""
    workdir.mkdir(parents=True, exist_ok=True)
    members = ensure_members(data.orders, data.csv_path.parent)
    ours_url = fresh_database(backend, "memberops_bench_loyalty", workdir)
    try:
        print(f"  {backend} loyalty ours: {data.orders:,} orders", file=sys.stderr, flush=True)
        ours = _run_child(["ours", "--url", ours_url, "--csv", str(data.csv_path), "--members", str(members)])
        raw_url = fresh_database(backend, "memberops_bench_loyalty_raw", workdir)
        try:
            if backend == "postgres":
                checkpoint_postgres()
            print(f"  {backend} loyalty raw: the ledger rows ours wrote", file=sys.stderr, flush=True)
            raw = _run_child(["raw", "--url", raw_url, "--source", ours_url])
        finally:
            drop_database(backend, "memberops_bench_loyalty_raw", workdir)
    finally:
        drop_database(backend, "memberops_bench_loyalty", workdir)
    problems = [
        f"raw has {raw['counts'][name]} {name}, ours {ours['counts'][name]}"
        for name in LEDGER_TABLES
        if raw["counts"][name] != ours["counts"][name]
    ]
    if ours["counts"]["order_earnings"] == 0:
        problems.append("ours earned for no order")
    if problems:
        raise RuntimeError("loyalty benchmark check failed: " + "; ".join(problems))
    return ReplayComparison(backend, data, ours, raw)


def _cells(rows: int, run: dict[str, Any]) -> str:
    return (
        f"{fmt_int(rows / run['seconds'])} | {run['seconds']:,.1f} s | {run['cpu_s']:,.1f} s"
        f" | {run['peak_rss_mb']:,.0f} MiB"
    )


def render(comparison: ReplayComparison, command: str, machine: str, server: str | None) -> tuple[str, str]:
    """Return the docs/benchmarks.md section (key, body) for one comparison."""
    n = fmt_int
    ours, raw, counts = comparison.ours, comparison.raw, comparison.ours["counts"]
    report = ours["report"]
    name = {"sqlite": "SQLite (a fresh file, WAL)", "postgres": "PostgreSQL (a fresh database)"}
    verdict = "meets" if comparison.ratio >= 1 / 3 else "**misses**"
    rows = comparison.ledger_rows
    tables = ", ".join(f"{name} {n(counts[name])}" for name in LEDGER_TABLES)
    body = f"""\
## Earning for imported orders vs raw insert of the ledger rows: {name[comparison.backend]}

Measured {stamp()} with `{command}`.
Machine: {machine}.{f" Server: {server}." if server else ""}
Data: the {n(comparison.data.orders)}-order file of the import benchmark and {n(counts["memberships"])}
members who registered before their first order; the demo fruit-chain programme
(`memberops.loyalty.programme.demo_programme()`).

| run | ledger rows/s | time | client CPU | peak RSS |
|---|---:|---:|---:|---:|
| ours: `LoyaltyService.replay` | {_cells(rows, ours)} |
| raw: Core `insert()` executemany of the ledger rows ours wrote | {_cells(rows, raw)} |
| **ratio ours / raw** | **{comparison.ratio:.3f}** | | | |

Bar (the loyalty issue): at least 1/3 of raw speed ({verdict}: {comparison.ratio:.2f}). Ours replayed
{n(report["orders"])} member orders in payment order ({n(report["earned"])} earned, {n(report["refunds"])}
refunds taken back, {n(report["checkpoints"])} expiry and tier checkpoints, {n(report["expired_points"])}
points expired, {n(report["downgraded"])} downgrades); the members and orders were imported before
the clock started. Raw inserted the same {n(rows)} ledger rows ({tables}), read back from ours'
database, with the rows they refer to inserted first, untimed.
"""
    return f"loyalty-replay-{comparison.backend}-{comparison.data.orders}", body


def main(argv: list[str] | None = None) -> None:
    """Child entry point: run one measured side and print its result as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("ours", "raw"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--members", type=Path)
    parser.add_argument("--source")
    args = parser.parse_args(argv)
    if args.mode == "ours":
        result = child_ours(args.url, args.csv, args.members)
    else:
        result = child_raw(args.url, args.source)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()

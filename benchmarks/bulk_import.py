"""Bulk import of orders against the raw insert of the same rows, on SQLite and PostgreSQL.

*Ours* is the whole pipeline a brand runs (``memberops.ingest.bulk.import_file``): read the CSV,
validate and normalise every row, resolve each order to a person through OneID (hashing and
encrypting identifiers, creating and merging persons), and store orders, lines and refunds.

*Raw* is the floor nobody can beat with SQLAlchemy: every row ours stored (persons, identifiers,
merges, orders, order lines, refunds, with their ids and foreign keys), read back from ours'
database and inserted into a fresh one with plain Core ``insert()`` executemany, one transaction a
chunk of the importer's batch size. Only the inserts are timed. Inserting the very rows ours
wrote, not a look-alike set, is what makes the two comparable: the same tables, the same index
keys, the same row count.

Each measured run happens in a child process on a fresh, migrated database, so its peak RSS
(``ru_maxrss``) is its own and neither run inherits the other's caches. Run as a module, this file
is that child (``python -m benchmarks.bulk_import ours|raw ...``): it prints one JSON line.
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

from benchmarks.data import OrderData
from benchmarks.databases import (
    BENCH_SECRET,
    bench_vault,
    checkpoint_postgres,
    drop_database,
    fresh_database,
)
from benchmarks.raw_copy import copy_rows, cpu_s, status_mb
from benchmarks.report import fmt_int, stamp
from memberops.ingest.bulk import BATCH_SIZE, import_file
from memberops.kit.db import make_engine
from memberops.kit.settings import Settings
from memberops.models import Identifier, IdentityMerge, Order, OrderLine, Person, Refund
from memberops.wiring import build_services

PROGRESS_EVERY = 100_000


def _peak_rss_mb() -> float:
    """This process's peak resident set so far, in MiB."""
    return status_mb("VmHWM")


def _rss_mb() -> float:
    """This process's resident set now, in MiB."""
    return status_mb("VmRSS")


def _counts(url: str) -> dict[str, int]:
    """Count what a run left in the database (checked against the input after the clock stops)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:

            def count(column: Any, *where: Any) -> int:
                return int(connection.scalar(select(func.count(column)).where(*where)) or 0)

            return {
                "orders": count(Order.id),
                "order_lines": count(OrderLine.id),
                "refunds": count(Refund.id),
                "persons": count(Person.id),
                "live_persons": count(Person.id, Person.merged_into_id.is_(None)),
                "identifiers": count(Identifier.id),
                "merges": count(IdentityMerge.id),
                "attributed_orders": count(Order.id, Order.person_id.is_not(None)),
            }
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- children (measured)


def child_ours(url: str, csv_path: Path, reject_path: Path) -> dict[str, Any]:
    """Import ``csv_path`` through ``import_file``; return the timing, the summary and the counts."""
    engine = make_engine(url)
    services = build_services(
        Settings(database_url=url, secret_key=BENCH_SECRET), engine=engine, vault=bench_vault()
    )
    done = 0
    started = time.perf_counter()

    def progress(rows: int) -> None:
        nonlocal done
        before, done = done, done + rows
        if done // PROGRESS_EVERY != before // PROGRESS_EVERY:
            rate = done / (time.perf_counter() - started)
            print(f"    ours: {done:>9,} rows, {rate:,.0f} rows/s", file=sys.stderr, flush=True)

    rss_before = _rss_mb()
    cpu = cpu_s()
    started = time.perf_counter()
    summary = import_file(services, csv_path, "orders", reject_path=reject_path, progress=progress)
    seconds = time.perf_counter() - started
    cpu = cpu_s() - cpu
    peak = _peak_rss_mb()
    engine.dispose()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "summary": summary.as_dict(),
        "counts": _counts(url),
    }


#: The tables an import writes: raw times inserting exactly these.
IMPORT_TABLES = ("persons", "identifiers", "identity_merges", "orders", "order_lines", "refunds")


def child_raw(url: str, source_url: str) -> dict[str, Any]:
    """Insert the very rows ours stored (read back from ``source_url``) with plain Core executemany.

    "The same rows" means all of them: the orders, lines and refunds with the person, identifier
    and store ids ours gave them (so every index gets the same keys), and the persons, identifiers
    and merges OneID created. Each chunk of rows is one transaction; only the inserts are timed.
    """
    rss_before = _rss_mb()
    copied = copy_rows(url, source_url, IMPORT_TABLES)
    return {**copied, "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": rss_before, "counts": _counts(url)}


# ---------------------------------------------------------------------- parent


@dataclass(frozen=True)
class ImportComparison:
    """Ours and raw on one backend for one data set, with the checks that the runs did the same work."""

    backend: str
    data: OrderData
    ours: dict[str, Any]
    raw: dict[str, Any]

    @property
    def ours_rows_per_s(self) -> float:
        return float(self.data.orders / self.ours["seconds"])

    @property
    def raw_rows_per_s(self) -> float:
        return float(self.raw["counts"]["orders"] / self.raw["seconds"])

    @property
    def ratio(self) -> float:
        """Ours over raw in rows a second (1.0: as fast as the bare inserts)."""
        return self.ours_rows_per_s / self.raw_rows_per_s


def _run_child(args: list[str]) -> dict[str, Any]:
    """Run one measured child; its progress goes to our stderr, its last stdout line is the result."""
    command = [sys.executable, "-m", "benchmarks.bulk_import", *args]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def check(comparison: ImportComparison) -> None:
    """Fail loudly if the two runs did not store the same rows (a fast wrong import proves nothing)."""
    meta, ours, raw = comparison.data.meta, comparison.ours, comparison.raw
    summary = ours["summary"]
    problems = []
    if summary["rows"] != meta["orders"]:
        problems.append(f"ours read {summary['rows']} rows, the file has {meta['orders']}")
    if summary["imported"] != summary["rows"] - summary["rejected"]:
        problems.append(f"imported {summary['imported']} != rows - rejected ({summary})")
    if summary["rejected"] != meta["invalid_orders"]:
        problems.append(f"ours rejected {summary['rejected']}, {meta['invalid_orders']} rows are invalid")
    for name, expected in (
        ("orders", meta["valid_orders"]),
        ("order_lines", meta["valid_lines"]),
        ("refunds", meta["refunds"]),
    ):
        for label, run in (("ours", ours), ("raw", raw)):
            if run["counts"][name] != expected:
                problems.append(f"{label} stored {run['counts'][name]} {name}, expected {expected}")
    for name in ("persons", "identifiers", "merges", "attributed_orders"):
        if raw["counts"][name] != ours["counts"][name]:
            problems.append(f"raw stored {raw['counts'][name]} {name}, ours {ours['counts'][name]}")
    if ours["counts"]["live_persons"] <= 0:
        problems.append("ours created no person")
    if problems:
        raise RuntimeError("import benchmark check failed: " + "; ".join(problems))


def compare(backend: str, data: OrderData, workdir: Path) -> ImportComparison:
    """Measure ours on a fresh database of ``backend``, then raw copying ours' rows into another."""
    workdir.mkdir(parents=True, exist_ok=True)
    ours_url = fresh_database(backend, "memberops_bench", workdir)
    try:
        if backend == "postgres":
            checkpoint_postgres()
        print(f"  {backend} ours: {data.orders:,} orders", file=sys.stderr, flush=True)
        rejects = workdir / f"ours-{backend}.rejects.csv"
        ours = _run_child(["ours", "--url", ours_url, "--csv", str(data.csv_path), "--rejects", str(rejects)])
        raw_url = fresh_database(backend, "memberops_bench_raw", workdir)
        try:
            if backend == "postgres":
                checkpoint_postgres()
            print(f"  {backend} raw: the rows ours stored", file=sys.stderr, flush=True)
            raw = _run_child(["raw", "--url", raw_url, "--source", ours_url])
        finally:
            drop_database(backend, "memberops_bench_raw", workdir)
    finally:
        drop_database(backend, "memberops_bench", workdir)
    comparison = ImportComparison(backend, data, ours, raw)
    check(comparison)
    return comparison


def main(argv: list[str] | None = None) -> None:
    """Child entry point: run one measured import and print its result as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("ours", "raw"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--rejects", type=Path)
    parser.add_argument("--source", help="raw: the database whose rows to insert")
    args = parser.parse_args(argv)
    if args.mode == "ours":
        result = child_ours(args.url, args.csv, args.rejects)
    else:
        result = child_raw(args.url, args.source)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()


def render(comparison: ImportComparison, command: str, machine: str, server: str | None) -> tuple[str, str]:
    """Return the docs/benchmarks.md section (key, body) for one comparison."""
    meta, ours, raw = comparison.data.meta, comparison.ours, comparison.raw
    summary, counts = ours["summary"], ours["counts"]
    n = fmt_int
    name = {"sqlite": "SQLite (a fresh file, WAL)", "postgres": "PostgreSQL (a fresh database)"}
    verdict = "meets" if comparison.ratio >= 1 / 3 else "**misses**"
    memory = "meets" if ours["peak_rss_mb"] < 2048 else "**misses**"
    reasons = ", ".join(f"{k}: {v}" for k, v in summary["reject_reasons"].items()) or "none"
    ours_row = (
        f"{n(comparison.ours_rows_per_s)} | {ours['seconds']:,.1f} s | {ours['cpu_s']:,.1f} s"
        f" | {ours['peak_rss_mb']:,.0f} MiB"
    )
    raw_row = (
        f"{n(comparison.raw_rows_per_s)} | {raw['seconds']:,.1f} s | {raw['cpu_s']:,.1f} s"
        f" | {raw['peak_rss_mb']:,.0f} MiB"
    )
    cpu_ratio = raw["cpu_s"] / ours["cpu_s"] * comparison.data.orders / raw["counts"]["orders"]
    body = f"""\
## Bulk import vs raw insert: {name[comparison.backend]}, {n(meta["orders"])} orders

Measured {stamp()} with `{command}`.
Machine: {machine}.{f" Server: {server}." if server else ""}
Data: {n(meta["orders"])} orders ({n(meta["valid_lines"])} lines, {n(meta["refunds"])} refunds,
{n(meta["invalid_orders"])} rows with a malformed phone, {n(meta["guest_orders"])} guest orders)
from {n(meta["persons_drawn"])} persons, a canonical CSV of {meta["csv_bytes"] / 2**20:,.0f} MiB
(seed {meta["seed"]}, generator v{meta["generator_version"]}); batches of {BATCH_SIZE:,} orders.

| run | orders/s | time | client CPU | peak RSS |
|---|---:|---:|---:|---:|
| ours: `import_file(services, path, "orders")` | {ours_row} |
| raw: Core `insert()` executemany of the rows ours stored | {raw_row} |
| **ratio ours / raw** | **{comparison.ratio:.3f}** | | {cpu_ratio:.3f} | |

Bar (the import issue): at least 1/3 of raw speed ({verdict}: {comparison.ratio:.2f}), peak memory
under 2 GiB ({memory}: {ours["peak_rss_mb"]:,.0f} MiB; {ours["rss_before_mb"]:,.0f} MiB before the
import began). Ours counts every row of the file (read, validated, attributed, stored). Raw then
inserts exactly the rows ours stored, read back from its database: persons, identifiers, merges,
orders, lines and refunds with the same ids and the same person, identifier and store ids (so every
index gets the same keys), {n(BATCH_SIZE)} rows a transaction, timing only the inserts; its
orders/s is the orders it inserted over that time. "client CPU" is the importing process's user +
system time over the same window
(the database server's own CPU is not in it; SQLite runs in-process, so there it is all of it); its
ratio is the rows/s ratio the client side alone would allow. Peak RSS is the child's `VmHWM`.

Checked after the clock stopped: ours read {n(summary["rows"])} rows, imported {n(summary["imported"])},
rejected {n(summary["rejected"])} ({reasons}), duplicates {n(summary["duplicates"])}; both runs
stored {n(counts["orders"])} orders, {n(counts["order_lines"])} lines and {n(counts["refunds"])}
refunds. OneID made {n(counts["persons"])} persons ({n(counts["live_persons"])} live after
{n(counts["merges"])} merges) holding {n(counts["identifiers"])} identifiers, and attributed
{n(counts["attributed_orders"])} orders.
"""
    return f"import-{comparison.backend}-{meta['orders']}", body

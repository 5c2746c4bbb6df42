"""The nightly insight run against one bare DuckDB query, and our purchase summary against lifetimes.

In one process, on one generated data set (``benchmarks.insight_data``: a DuckDB file with the
store's tables, standing for the warehouse copy ADR 0009 points big brands' analytics at):

- **bare**: one hand-written DuckDB SQL query computing only the RFM aggregates — per person the
  last payment, the number of orders and their sum, over the 12 months to the as-of date — fetched
  as Arrow. Run three times; the median counts.
- **nightly**: ``insight.nightly.run_nightly`` on that DuckDB file: every analysis, every rule tag
  (the demo's three) and every saved segment (the four ready-made ones and two that read RFM
  classes and layers), writing holders, history and outbox events to a SQLite store that holds the
  persons (the tables the writes refer to), the demo programme, and the definitions. The run is
  taken twice: the **first night** (as of the day before; everyone enters the tags and segments)
  and the **next night** (as of the data's last day; what a scheduled run does every night: the
  day's diff). Both are reported; the bar is judged on both.
- **summary**: ``insight.summary.purchase_summary`` (frequency, recency, T, monetary with the
  lifetimes conventions) on DuckDB against ``lifetimes.utils.summary_data_from_transaction_data``
  on a pandas frame, both given the same transaction log (one row per purchase: person, business
  date, net amount, made from the generated orders once, untimed); the outputs are compared
  person by person after the clocks stop.
- **memory**: the peak resident set (``VmHWM``, reset between phases through
  ``/proc/self/clear_refs``) of each phase; DuckDB runs in this process, so its memory is in it.

Usage: ``uv run python -m benchmarks.run --only insight [--members N] [--orders N]``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from lifetimes.utils import summary_data_from_transaction_data
from sqlalchemy import Engine

from benchmarks.data import DATA_DIR
from benchmarks.insight_data import AS_OF, InsightData, ensure_data
from benchmarks.raw_copy import status_mb
from benchmarks.report import fmt_int, stamp
from memberops.demo.insight_run import DEMO_TAGS
from memberops.insight import base, nightly
from memberops.insight import segments as segment_service
from memberops.insight import tags as tag_service
from memberops.insight.periods import day_number
from memberops.insight.source import Source
from memberops.insight.summary import purchase_summary
from memberops.kit import migrate
from memberops.kit.db import make_engine, session_factory, unit_of_work
from memberops.loyalty.programme import demo_programme
from memberops.loyalty.service import LoyaltyService

ZONE = "Asia/Shanghai"
ACTOR = "benchmark"
#: Segments besides the ready-made ones, so the run also evaluates RFM classes and layers.
EXTRA_SEGMENTS = (
    ("win_back_valuable", 'rfm = "重要挽留"', "重要挽留: valuable buyers drifting away"),
    ("koc_now", 'layer = "koc" and tier in ("silver", "gold")', "KOC this month with a silver or gold card"),
)
BARE_RUNS = 3
#: Each purchase summary runs this many times; the median counts (the machine is shared).
SUMMARY_RUNS = 3

#: The bare query: only the RFM aggregates, over the 12 months to the as-of date (end exclusive).
BARE_SQL = """
SELECT person_id, max(paid_at) AS last_paid_at, count(*) AS orders, sum(amount_fen) AS spend_fen
FROM orders
WHERE person_id IS NOT NULL AND paid_at >= TIMESTAMP '{start}' AND paid_at < TIMESTAMP '{end}'
GROUP BY person_id
"""
#: Two more bare queries, each only one more aggregate the analyses' definitions need at its own
#: grain: purchase days per person and day (lifecycle, cohorts, magic number, CLV summary) and
#: spend per person and category (preferences). Not part of any bar: they show what the minimum
#: of hand-written SQL for those figures costs next to the bare RFM query.
FLOOR_SQL = {
    "purchase days (person × business day)": """
SELECT person_id, (epoch(paid_at)::BIGINT + 28800) // 86400 AS day, sum(amount_fen) AS spend_fen
FROM orders WHERE person_id IS NOT NULL AND paid_at < TIMESTAMP '{end}'
GROUP BY ALL
""",
    "category spend (person × category, 12 months)": """
SELECT o.person_id, l.category, sum(l.amount_fen) AS spend_fen
FROM orders o JOIN order_lines l ON l.order_id = o.id
WHERE o.person_id IS NOT NULL AND o.paid_at >= TIMESTAMP '{start}' AND o.paid_at < TIMESTAMP '{end}'
GROUP BY ALL
""",
}


@dataclass(frozen=True)
class InsightComparison:
    """Everything one run measured."""

    data: InsightData
    bare_seconds: tuple[float, ...]
    floor_seconds: dict[str, float]
    first: nightly.NightlyRun
    next: nightly.NightlyRun
    summary: dict[str, Any]
    memory: dict[str, float]
    load_after: tuple[float, float, float]

    @property
    def bare(self) -> float:
        return statistics.median(self.bare_seconds)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def reset_peak() -> None:
    """Start a new peak-memory window (``VmHWM``); a no-op where Linux's clear_refs is missing."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def build_store(data: InsightData, directory: Path) -> Engine:
    """A fresh SQLite store with the persons, the demo programme and the tags and segments defined.

    The nightly run writes tag holders, segment members, their history and outbox events here;
    those rows refer to persons, so the persons are copied from the data set (untimed).
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("insight-store.db*"):
        stale.unlink()
    engine = make_engine(f"sqlite:///{directory / 'insight-store.db'}")
    migrate.upgrade(engine)
    duck = ibis.duckdb.connect(str(data.path), read_only=True)
    try:
        persons = duck.table("persons").order_by("id").to_pyarrow()
    finally:
        duck.disconnect()
    rows = list(
        zip(
            persons.column("id").to_pylist(),
            [value.isoformat(sep=" ") for value in persons.column("created_at").to_pylist()],
            persons.column("merged_into_id").to_pylist(),
            strict=True,
        )
    )
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.executemany("INSERT INTO persons (id, created_at, merged_into_id) VALUES (?, ?, ?)", rows)
        raw.commit()
    finally:
        raw.close()
    sessions = session_factory(engine)
    with unit_of_work(sessions) as session:
        LoyaltyService(ZONE).apply_programme(session, demo_programme(), actor=ACTOR)
        for name, expression, description in DEMO_TAGS:
            tag_service.define_tag(session, name, expression=expression, description=description, actor=ACTOR)
        segment_service.define_ready_made(session, actor=ACTOR)
        for name, expression, description in EXTRA_SEGMENTS:
            segment_service.define_segment(session, name, expression, description=description, actor=ACTOR)
    return engine


def _timed(connection: Any, sql: str) -> float:
    """Run one query to an Arrow table; return its wall-clock seconds."""
    started = time.perf_counter()
    result = connection.sql(sql).to_arrow_table()
    seconds = time.perf_counter() - started
    assert result.num_rows > 0
    return seconds


def time_bare(connection: Any) -> tuple[tuple[float, ...], dict[str, float]]:
    """Time the bare RFM query ``BARE_RUNS`` times, and each floor query (median of three)."""
    end = _utc_text(base.Clock.at(AS_OF, ZONE).end_epoch)
    start = _utc_text(base.Clock.at(AS_OF.replace(year=AS_OF.year - 1), ZONE).end_epoch)
    bare = tuple(_timed(connection, BARE_SQL.format(start=start, end=end)) for _ in range(BARE_RUNS))
    floor = {
        name: statistics.median(_timed(connection, sql.format(start=start, end=end)) for _ in range(3))
        for name, sql in FLOOR_SQL.items()
    }
    return bare, floor


def _utc_text(epoch: int) -> str:
    return pd.Timestamp(epoch, unit="s").strftime("%Y-%m-%d %H:%M:%S")


def transaction_log(backend: Any) -> pa.Table:
    """The purchases known on the as-of date (``base.orders``): person, business day, net fen."""
    facts = base.orders(Source(backend), base.Clock.at(AS_OF, ZONE))
    return facts.select("person_id", "day", "net_fen").order_by(["person_id", "day"]).to_pyarrow()


def _median_of(runs: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``work`` ``runs`` times, collecting garbage before each; return the median seconds, a result."""
    seconds = []
    result: Any = None
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def compare_summary(log: pa.Table, lifetimes_rows: int | None) -> dict[str, Any]:
    """Time our summary (DuckDB) and lifetimes' (pandas) on the same log; check they agree."""
    log_rows = log.num_rows
    if lifetimes_rows is not None and lifetimes_rows < log.num_rows:
        # Whole histories only: keep the first persons (by id) until the row budget is used.
        people = log.column("person_id").to_numpy()
        cut = int(people[lifetimes_rows])
        log = log.filter(pa.compute.less(log.column("person_id"), cut))
    as_of_day = day_number(AS_OF)
    frame = pd.DataFrame(
        {
            "customer_id": log.column("person_id").to_numpy(),
            "date": pd.to_datetime(log.column("day").to_numpy(), unit="D"),
            "amount": log.column("net_fen").to_numpy() / 100,
        }
    )
    duck = ibis.duckdb.connect()
    duck.create_table("facts", log)
    facts = duck.table("facts")

    def ours_run() -> pa.Table:
        return purchase_summary(base.purchase_days(facts), as_of_day).to_pyarrow()

    def theirs_run() -> pd.DataFrame:
        return summary_data_from_transaction_data(
            frame,
            "customer_id",
            "date",
            monetary_value_col="amount",
            observation_period_end=AS_OF.isoformat(),
            freq="D",
        )

    ours_seconds, ours = _median_of(SUMMARY_RUNS, ours_run)
    theirs_seconds, theirs = _median_of(SUMMARY_RUNS, theirs_run)

    mine = ours.to_pandas().set_index("person_id").sort_index()
    theirs = theirs.sort_index()
    same = (
        len(mine) == len(theirs)
        and (mine["frequency"].to_numpy() == theirs["frequency"].to_numpy()).all()
        and (mine["recency"].to_numpy() == theirs["recency"].to_numpy()).all()
        and (mine["T"].to_numpy() == theirs["T"].to_numpy()).all()
        and np.allclose(
            np.divide(
                mine["repeat_fen"].to_numpy() / 100,
                mine["frequency"].to_numpy(),
                out=np.zeros(len(mine)),
                where=mine["frequency"].to_numpy() > 0,
            ),
            theirs["monetary_value"].to_numpy(),
            rtol=1e-9,
            atol=1e-9,
        )
    )
    duck.disconnect()
    return {
        "log_rows": log_rows,
        "rows": log.num_rows,
        "people": len(mine),
        "ours_seconds": ours_seconds,
        "lifetimes_seconds": theirs_seconds,
        "same": bool(same),
    }


def run(
    members: int, orders: int, *, lifetimes_rows: int | None = None, directory: Path = DATA_DIR
) -> InsightComparison:
    """Generate (or reuse) the data, then measure everything in this one process."""
    data = ensure_data(members, orders, directory, log=_log)
    engine = build_store(data, directory / "run")
    sessions = session_factory(engine)
    backend = ibis.duckdb.connect(str(data.path))
    memory: dict[str, float] = {}
    try:
        # Warm up the import of Arrow conversions and Ibis compilation, which the first query of a
        # process pays once (~0.7 s here): a fixed cost of starting Python, not of the work.
        ibis.memtable({"warm": [1]}).to_pyarrow()
        backend.table("stores").count().to_pyarrow()

        reset_peak()
        bare, floor = time_bare(backend.con)
        memory["bare"] = status_mb("VmHWM")
        _log(f"bare RFM query: {', '.join(f'{s:.3f}' for s in bare)} s; floor queries {floor}")

        runs = []
        for day in (AS_OF - timedelta(days=1), AS_OF):
            gc.collect()
            reset_peak()
            found = nightly.run_nightly(
                engine,
                sessions,
                time_zone=ZONE,
                actor=ACTOR,
                as_of=day,
                backend=backend,
                on_step=lambda step: _log(f"  {step.kind} {step.name}: {step.seconds:.2f} s"),
            )
            memory[f"nightly {day}"] = status_mb("VmHWM")
            _log(f"nightly as of {day}: {found.seconds:.1f} s")
            runs.append(found)

        log = transaction_log(backend)
    finally:
        backend.disconnect()
        engine.dispose()
    gc.collect()
    reset_peak()
    summary = compare_summary(log, lifetimes_rows)
    memory["summary"] = status_mb("VmHWM")
    _log(
        f"summary: ours {summary['ours_seconds']:.2f} s, lifetimes {summary['lifetimes_seconds']:.2f} s "
        f"on {summary['rows']:,} rows, same: {summary['same']}"
    )
    return InsightComparison(data, bare, floor, runs[0], runs[1], summary, memory, os.getloadavg())


def _step_rows(first: nightly.NightlyRun, second: nightly.NightlyRun) -> str:
    """One table row per step: seconds on the first and on the next night."""
    lines = []
    for one, two in zip(first.steps, second.steps, strict=True):
        detail = ", ".join(f"{key} {value}" for key, value in two.detail.items() if key != "name")
        lines.append(f"| {two.kind} `{two.name}` | {one.seconds:.2f} | {two.seconds:.2f} | {detail} |")
    return "\n".join(lines)


def render(comparison: InsightComparison, command: str, machine: str) -> tuple[str, str]:
    """Return the docs/benchmarks.md section (key, body)."""
    n = fmt_int
    data, counts = comparison.data, comparison.data.counts
    bare = comparison.bare
    first, second = comparison.first, comparison.next
    ratio_first, ratio_next = first.seconds / bare, second.seconds / bare
    summary = comparison.summary
    speedup = summary["lifetimes_seconds"] / summary["ours_seconds"]
    bar_nightly = "meets" if max(ratio_first, ratio_next) <= 3 else "**misses**"
    bar_summary = "meets" if speedup >= 5 else "**misses**"
    if summary["rows"] == summary["log_rows"]:
        subset = "the whole log"
    else:
        subset = f"a subset of the {n(summary['log_rows'])}-purchase log: whole histories of the lowest ids"
    rfm_seconds = next(step.seconds for step in second.steps if step.name == "rfm")
    writes = second.seconds_of("tag") + second.seconds_of("segment")
    floor_total = bare + sum(comparison.floor_seconds.values())
    analyses = second.seconds_of("analysis")
    floor_rows = "\n".join(
        f"| floor: one bare DuckDB query, only {name} | {seconds:.3f} s | {seconds / bare:.1f}× |"
        for name, seconds in comparison.floor_seconds.items()
    )
    memory = comparison.memory
    runs = ", ".join(f"{seconds:.3f}" for seconds in comparison.bare_seconds)
    body = f"""\
## Nightly insight run vs one bare DuckDB RFM query, {n(data.members)} members, {n(data.orders)} orders

Measured {stamp()} with `{command}`.
Machine: {machine}; load average (1, 5, 15 min) when the run ended:
{", ".join(f"{load:.2f}" for load in comparison.load_after)} — the machine is shared, and DuckDB's two
threads lose most to another busy process, so compare ratios only between runs on a quiet machine.
Data (`benchmarks/insight_data.py`, generated in DuckDB, seeded): {n(counts["persons"])} persons
({n(data.members)} members), {n(counts["orders"])} orders, {n(counts["order_lines"])} order lines,
{n(counts["refunds"])} refunds, {n(counts["events"])} events, {n(counts["consents"])} consents,
{n(counts["tier_history"])} tier changes, {n(counts["stores"])} stores, as of {AS_OF} (Asia/Shanghai).
The analyses read a DuckDB file of the store's tables (the warehouse copy of ADR 0009); tags and
segments are written to a SQLite store holding the persons and the definitions.

| run | time | ÷ bare |
|---|---:|---:|
| bare: one DuckDB SQL query, per person last payment, order count, sum (12 months) | {bare:.3f} s | 1 |
{floor_rows}
| the three bare queries together | {floor_total:.3f} s | {floor_total / bare:.1f}× |
| **nightly, next night** (as of {second.as_of}) | {second.seconds:.1f} s | **{ratio_next:.0f}×** |
| nightly, first night (as of {first.as_of}; everyone enters) | {first.seconds:.1f} s | {ratio_first:.0f}× |
| of the next night: the 8 analyses | {analyses:.1f} s | {analyses / bare:.0f}× |
| of the next night: `rfm` alone | {rfm_seconds:.2f} s | {rfm_seconds / bare:.1f}× |
| of the next night: {len(second.tags)} tags and {len(second.segments)} segments, evaluated and written \
| {writes:.1f} s | |

The bare query ran {BARE_RUNS} times ({runs} s); the ratios use the median. Before any clock
started the process ran one trivial query through Ibis and Arrow (their first use costs ~0.7 s of
imports, once per process). The floor queries are not part of a bar: each computes only one more
aggregate the analyses are defined by, at its own grain, to show what hand-written SQL for those
figures alone costs next to the bare RFM query.

Steps of the nightly run (seconds; the figures are the next night's):

| step | first night | next night | figures |
|---|---:|---:|---|
{_step_rows(first, second)}

| purchase summary (frequency, recency, T, monetary) | time | speed-up |
|---|---:|---:|
| `lifetimes.utils.summary_data_from_transaction_data` (pandas) | {summary["lifetimes_seconds"]:.2f} s | 1 |
| ours: `insight.summary.purchase_summary` (DuckDB) | {summary["ours_seconds"]:.2f} s | **{speedup:.1f}×** |

Each ran {SUMMARY_RUNS} times; the table shows the medians. Both read the same transaction log
({subset}: {n(summary["rows"])} purchases of {n(summary["people"])} people, the purchases known on
{AS_OF}); frequency, recency, T and the monetary value agree for every person:
{"yes" if summary["same"] else "**no**"}.

Peak memory (resident set of this one process, DuckDB included; `VmHWM` reset before each phase):
bare queries {memory["bare"]:,.0f} MiB, first night {memory[f"nightly {first.as_of}"]:,.0f} MiB,
next night {memory[f"nightly {second.as_of}"]:,.0f} MiB, summaries {memory["summary"]:,.0f} MiB.

Bars (issue 4): the whole nightly run at most 3× the bare query ({bar_nightly}: {ratio_next:.0f}× on
the next night, {ratio_first:.0f}× on the first); the summary at least 5× faster than lifetimes'
({bar_summary}: {speedup:.1f}×); peak memory stated above.
"""
    return f"insight-nightly-{data.members}", body

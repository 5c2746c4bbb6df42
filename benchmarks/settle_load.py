"""``POST /api/v1/checkout/settle`` under concurrent load on PostgreSQL, beside the bare endpoint.

A settle is what a till does at payment: price the member's cart (member prices, tier benefits),
take the points the member pays with out of their soonest-expiring lots under the account lock,
and record the settlement tied to the order, all in one transaction, idempotent on its key. The
members (2,000, each with 100,000 points, the demo fruit-chain programme applied) exist before the
clock starts; each request settles a distinct order of a member drawn at random, paying 10 points.
The bare FastAPI endpoint doing one INSERT (``benchmarks.bare_app``) runs in the same run, so the
figures can be read as a ratio on a noisy machine. Needs ``wrk``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select

from benchmarks.api_load import (
    BARE_DB,
    OURS_DB,
    ROOT,
    WRK_DONE,
    LoadArgs,
    TargetRun,
    _cpu_seconds,
    run_target,
    run_wrk,
    serve,
)
from benchmarks.data import phones
from benchmarks.databases import BENCH_SECRET, bench_vault, checkpoint_postgres, drop_postgres, fresh_database
from benchmarks.report import fmt_int, stamp
from memberops.ingest.records import parse_event
from memberops.kit.db import make_engine, unit_of_work
from memberops.kit.settings import Settings
from memberops.loyalty.programme import demo_programme
from memberops.wiring import build_services

MEMBERS = 2_000
POINTS_EACH = 100_000
POINTS_A_SETTLE = 10

_LUA = """\
local prefix = "__PREFIX__"
local phones = { __PHONES__ }
local counter = 0
math.randomseed(__SEED__)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
__AUTH__

request = function()
  counter = counter + 1
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Idempotency-Key"] = prefix .. "-" .. counter
  local body = '{"source":"pos","external_order_id":"' .. prefix .. '-' .. counter ..
    '","person":"phone:' .. phones[math.random(#phones)] .. '","lines":[' ..
    '{"sku":"SKU0001","category":"tea","qty":2,"unit_price":"18.00"},' ..
    '{"sku":"SKU0002","category":"bakery","qty":1,"unit_price":"12.50"}],"points":__POINTS__}'
  return wrk.format(nil, "/api/v1/checkout/settle", headers, body)
end
"""


def member_phones() -> list[str]:
    """The members' mobiles (plain 11 digits), disjoint from the other benchmarks' phones."""
    people = np.arange(MEMBERS) + 60_000_000
    return [str(value) for value in phones(people, np.zeros(MEMBERS, dtype=np.int64)).to_pylist()]


def _setup() -> tuple[str, dict[str, str]]:
    """A fresh database with the programme, the members and their points, and an operator key."""
    from memberops.access.service import create_key

    url = fresh_database("postgres", OURS_DB, ROOT / "benchmarks" / ".data")
    engine = make_engine(url)
    services = build_services(
        Settings(database_url=url, secret_key=BENCH_SECRET), engine=engine, vault=bench_vault()
    )
    with unit_of_work(services.sessions) as session:
        services.loyalty.apply_programme(session, demo_programme(), actor="benchmark")
        events = [
            parse_event(
                {
                    "type": "register",
                    "occurred_at": "2026-01-01T10:00:00+08:00",
                    "field": "mini_program",
                    "external_id": f"SETTLE-REG-{number}",
                    "phone": phone,
                }
            )
            for number, phone in enumerate(member_phones())
        ]
        outcomes = services.ingest.ingest_events(session, events, actor="benchmark")
        for outcome in outcomes:
            assert outcome.person_id is not None
            services.loyalty.adjust(
                session,
                outcome.person_id,
                POINTS_EACH,
                reason="benchmark balance",
                actor="benchmark",
                key=f"settle-bench-{outcome.person_id}",
            )
        _, clear = create_key(session, "benchmark", "operator", actor="benchmark")
    engine.dispose()
    return url, {"Authorization": f"Bearer {clear}"}


def _settled(url: str) -> int:
    from memberops.models import CheckoutSettlement

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count(CheckoutSettlement.id))) or 0)
    finally:
        engine.dispose()


def run_settle(round_no: int, args: LoadArgs) -> TargetRun:
    """Serve the API on a fresh prepared database, warm it up, then load ``/checkout/settle``."""
    url, headers = _setup()
    checkpoint_postgres()
    auth = "\n".join(f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items())

    def script(prefix: str, seed: int) -> str:
        return (
            _LUA.replace("__PREFIX__", prefix)
            .replace("__PHONES__", ", ".join(f'"{phone}"' for phone in member_phones()))
            .replace("__SEED__", str(seed))
            .replace("__AUTH__", auth)
            .replace("__POINTS__", str(POINTS_A_SETTLE))
            + WRK_DONE
        )

    with serve("benchmarks.api_load:ours_app", {"BENCH_API_URL": url}) as (base, pid):
        run_wrk(base, script(f"sw{round_no}", round_no), f"sw{round_no}", args.warmup_s, args.connections)
        cpu_before = _cpu_seconds(pid)
        load = run_wrk(
            base, script(f"sm{round_no}", 100 + round_no), f"sm{round_no}", args.duration_s, args.connections
        )
        cpu = _cpu_seconds(pid) - cpu_before
    settled = _settled(url)
    drop_postgres(OURS_DB)
    print(
        f"  settle round {round_no}: {load.throughput:,.0f} req/s, p50 {load.p50_ms:.1f} ms, "
        f"p99 {load.p99_ms:.1f} ms, {load.errors} errors",
        file=sys.stderr,
        flush=True,
    )
    if settled < load.requests - load.errors:
        raise RuntimeError(f"settle: {load.requests - load.errors} answered but {settled} settlements stored")
    return TargetRun("settle", load, cpu, settled)


@dataclass
class SettleComparison:
    """Every run, in the order they ran (bare, settle, settle, bare)."""

    args: LoadArgs
    runs: list[TargetRun]

    def throughput(self, target: str) -> float:
        runs = [run for run in self.runs if run.target == target]
        return sum(r.load.requests for r in runs) / sum(r.load.seconds for r in runs)

    @property
    def ratio(self) -> float:
        return self.throughput("settle") / self.throughput("bare")


def compare(args: LoadArgs) -> SettleComparison:
    """Measure bare, settle, settle, bare, each on its own fresh database and server."""
    if args.generator != "wrk":
        raise SystemExit("the settle benchmark needs wrk (apt-get install -y wrk)")
    runs = []
    for round_no, target in enumerate(("bare", "settle", "settle", "bare"), 1):
        runs.append(run_target("bare", round_no, args) if target == "bare" else run_settle(round_no, args))
    drop_postgres(BARE_DB)
    return SettleComparison(args, runs)


def render(comparison: SettleComparison, command: str, machine: str, server: str | None) -> tuple[str, str]:
    """Return the docs/benchmarks.md section (key, body)."""
    args = comparison.args
    rows = []
    for run in comparison.runs:
        load = run.load
        label = (
            "ours: `POST /api/v1/checkout/settle`" if run.target == "settle" else "bare: FastAPI + 1 INSERT"
        )
        cpu_ms = 1000 * run.server_cpu_s / max(load.requests, 1)
        rows.append(
            f"| {label} | {fmt_int(load.throughput)} | {load.p50_ms:,.1f} | {load.p99_ms:,.1f} | "
            f"{load.errors} | {fmt_int(load.requests)} | {cpu_ms:.2f} |"
        )
    table = "\n".join(rows)
    settled = sum(run.stored_orders for run in comparison.runs if run.target == "settle")
    body = f"""\
## `POST /api/v1/checkout/settle` under load (PostgreSQL), beside a bare FastAPI INSERT

Measured {stamp()} with `{command}`.
Machine: {machine}.{f" Server: {server}." if server else ""}
Load: {comparison.runs[0].load.generator} on loopback, {args.connections} connections,
{args.warmup_s:g} s warm-up then {args.duration_s:g} s measured per run, in the order bare, settle,
settle, bare, each on a fresh database and server (uvicorn, 1 worker). Each settle is a distinct
order of one of {fmt_int(MEMBERS)} members (drawn at random; each holds {fmt_int(POINTS_EACH)} points
under the demo programme): two lines, member prices, {POINTS_A_SETTLE} points paid.

| run | req/s | p50 ms | p99 ms | errors | requests | server CPU ms/req |
|---|---:|---:|---:|---:|---:|---:|
{table}
| **ratio settle / bare** (all windows) | **{comparison.ratio:.3f}** | | | | | |

The loyalty issue sets no ratio for settle; the bare endpoint is here so the figures survive a
noisy machine. {fmt_int(settled)} settlements were stored (warm-up included), each with its points
spend drawn from the member's lots under the account lock.
"""
    return "settle-postgres", body

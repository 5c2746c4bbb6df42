"""``POST /api/v1/orders`` under concurrent load on PostgreSQL, against a bare FastAPI endpoint.

Both apps run the same way: uvicorn in a subprocess on 127.0.0.1, one worker, SQLAlchemy's pool
from ``make_engine``, each on a fresh database. The bare endpoint is a sync ``def`` (FastAPI's thread
pool) with one transaction per request; ours is async and hands the order to the intake's writer
thread, which writes the orders that arrived together in one transaction (group commit). The load
generator keeps C connections busy on loopback for a fixed time after a warm-up; every request is a
distinct order (unique ``external_id``) and 90% carry a phone drawn from a pool smaller than the
number of requests, so most of them attach to a person an earlier request created, as at a till.

The generator is ``wrk`` (C, one thread, a Lua script) when it is on the PATH, because a Python
client on a 2-core machine steals the CPU the server needs; otherwise an asyncio + httpx client.
Runs go bare, ours, ours, bare (ABBA), so a drift of the machine during the run hits both alike;
then each app once more with a single connection, where nothing can share a transaction and the
ratio is what one request costs on its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI
from sqlalchemy import func, select

from benchmarks.bare_app import bare_orders, create_schema
from benchmarks.data import phones
from benchmarks.databases import (
    BENCH_SECRET,
    bench_vault,
    checkpoint_postgres,
    drop_postgres,
    fresh_database,
    recreate_postgres,
)
from benchmarks.report import ROOT, fmt_int, stamp
from memberops.kit.db import make_engine, unit_of_work
from memberops.kit.settings import Settings
from memberops.wiring import build_services

OURS_DB = "memberops_bench"
BARE_DB = "memberops_bench_bare"
PHONE_POOL = 2_000
GUEST_SHARE = 0.10
PAID_AT = "2026-03-01T12:30:00+08:00"
AMOUNT = "36.80"
ITEMS = (
    '[{"sku":"LATTE-M","category":"coffee","qty":1,"amount":"20.00"},'
    '{"sku":"CROISSANT","category":"bakery","qty":1,"amount":"16.80"}]'
)
#: A request that has not answered by then counts as an error (and bounds a stuck run).
REQUEST_TIMEOUT_S = 10
MAX_REQUESTS = 1_000_000


def phone_pool(size: int = PHONE_POOL) -> list[str]:
    """``size`` distinct mobiles in the four formats the import data uses (disjoint from it)."""
    people = np.arange(size) + 50_000_000
    return [str(value) for value in phones(people, people % 4).to_pylist()]


def order_body(prefix: str, number: int, phone: str | None) -> str:
    """The JSON of one distinct order (what the Lua script builds too)."""
    phone_part = f',"phone":"{phone}"' if phone else ""
    return (
        f'{{"source":"pos","external_id":"{prefix}-{number}","paid_at":"{PAID_AT}",'
        f'"amount":"{AMOUNT}"{phone_part},"items":{ITEMS}}}'
    )


# ---------------------------------------------------------------------- the apps


def ours_app() -> FastAPI:
    """uvicorn factory: the memberops API on ``BENCH_API_URL`` with the benchmark secret."""
    from memberops.api.app import create_app  # the API may not exist yet when this module loads

    url = os.environ["BENCH_API_URL"]
    services = build_services(
        Settings(database_url=url, secret_key=BENCH_SECRET), engine=make_engine(url), vault=bench_vault()
    )
    return create_app(services)


def api_problem() -> str | None:
    """Return why the memberops API cannot be benchmarked yet, or None when it can."""
    if not (ROOT / "src" / "memberops" / "api" / "app.py").exists():
        return "src/memberops/api/app.py does not exist yet"
    probe = "from memberops.api.app import create_app; from memberops.wiring import build_services"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    if completed.returncode:
        return "memberops.api.app does not import: " + completed.stderr.strip().splitlines()[-1]
    return None


def wait_for_api(limit_s: float, poll_s: float = 30) -> str | None:
    """Poll until the API imports (another engineer may be writing it) or ``limit_s`` passes."""
    deadline = time.monotonic() + limit_s
    problem = api_problem()
    while problem and time.monotonic() < deadline:
        print(f"  api: {problem}; waiting", file=sys.stderr, flush=True)
        time.sleep(poll_s)
        problem = api_problem()
    return problem


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(factory: str, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """Run ``factory`` under uvicorn (1 worker) on a free loopback port; yield (base URL, pid)."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{factory} exited with {server.returncode} before serving")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{factory} did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield base, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (``/proc/PID/stat``), for CPU per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------- load generators


@dataclass
class Load:
    """What one timed load run saw."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    generator: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


_LUA = """\
local prefix = "__PREFIX__"
local path = "__PATH__"
local phones = { __PHONES__ }
local counter = 0
math.randomseed(__SEED__)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
__AUTH__

request = function()
  counter = counter + 1
  local phone = ""
  if math.random() >= __GUEST__ then
    phone = ',"phone":"' .. phones[math.random(#phones)] .. '"'
  end
  local body = '{"source":"pos","external_id":"' .. prefix .. '-' .. counter ..
    '","paid_at":"__PAID_AT__","amount":"__AMOUNT__"' .. phone .. ',"items":__ITEMS__}'
  return wrk.format(nil, path, nil, body)
end
"""


def wrk_load(
    base: str, path: str, headers: dict[str, str], prefix: str, seconds: float, connections: int, seed: int
) -> Load:
    """Run wrk (one thread) for ``seconds`` with a Lua script that makes every order distinct."""
    auth = "\n".join(f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items())
    script = (
        _LUA.replace("__PREFIX__", prefix)
        .replace("__PATH__", path)
        .replace("__PHONES__", ", ".join(f'"{phone}"' for phone in phone_pool()))
        .replace("__SEED__", str(seed))
        .replace("__AUTH__", auth)
        .replace("__GUEST__", str(GUEST_SHARE))
        .replace("__PAID_AT__", PAID_AT)
        .replace("__AMOUNT__", AMOUNT)
        .replace("__ITEMS__", ITEMS)
        + WRK_DONE
    )
    return run_wrk(base, script, prefix, seconds, connections)


#: The end of every wrk script: print the figures as one JSON line the parent reads.
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def run_wrk(base: str, script: str, prefix: str, seconds: float, connections: int) -> Load:
    """Run wrk (one thread) with ``script`` (which ends with ``WRK_DONE``) and read its figures."""
    script_path = ROOT / "benchmarks" / ".data" / f"wrk-{prefix}.lua"
    script_path.parent.mkdir(parents=True, exist_ok=True)
    script_path.write_text(script)
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={REQUEST_TIMEOUT_S}s",
        "-s",
        str(script_path),
        base,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(line for line in completed.stdout.splitlines() if line.startswith("WRKJSON "))
    stats = json.loads(line.removeprefix("WRKJSON "))
    errors = sum(stats[name] for name in ("connect", "read", "write", "status", "timeout"))
    return Load(
        requests=stats["requests"],
        seconds=stats["duration_us"] / 1e6,
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=errors,
        generator=f"wrk -t1 -c{connections}",
        detail=stats,
    )


async def _python_load_async(
    base: str, path: str, headers: dict[str, str], prefix: str, seconds: float, connections: int, seed: int
) -> Load:
    pool = phone_pool()
    rng = np.random.default_rng(seed)
    latencies: list[float] = []
    errors = 0
    issued = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Content-Type": "application/json", **headers}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal errors, issued
            while time.perf_counter() < deadline and issued < MAX_REQUESTS:
                issued += 1
                phone = None if rng.random() < GUEST_SHARE else pool[int(rng.integers(len(pool)))]
                body = order_body(prefix, issued, phone)
                sent = time.perf_counter()
                try:
                    response = await client.post(path, content=body, headers=headers)
                    if response.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    p50, p99 = np.percentile(np.array(latencies), [50, 99]) * 1000 if latencies else (0.0, 0.0)
    return Load(len(latencies), elapsed, float(p50), float(p99), errors, f"python httpx, {connections} conns")


def python_load(
    base: str, path: str, headers: dict[str, str], prefix: str, seconds: float, connections: int, seed: int
) -> Load:
    """The fallback generator: asyncio + httpx, bounded in time and in request count."""
    return asyncio.run(_python_load_async(base, path, headers, prefix, seconds, connections, seed))


# ---------------------------------------------------------------------- one target


@dataclass
class TargetRun:
    """One app under load: the measured window, the server's CPU, and what reached the database."""

    target: str
    load: Load
    server_cpu_s: float
    stored_orders: int
    live_persons: int = 0
    connections: int = 0


def _setup_ours() -> tuple[str, dict[str, str]]:
    """Fresh migrated database with an operator key; return its URL and the auth header."""
    from memberops.access.service import create_key

    url = fresh_database("postgres", OURS_DB, ROOT / "benchmarks" / ".data")
    engine = make_engine(url)
    services = build_services(
        Settings(database_url=url, secret_key=BENCH_SECRET), engine=engine, vault=bench_vault()
    )
    with unit_of_work(services.sessions) as session:
        _, clear = create_key(session, "benchmark", "operator", actor="benchmark")
    engine.dispose()
    return url, {"Authorization": f"Bearer {clear}"}


def _count_ours(url: str) -> tuple[int, int]:
    from memberops.models import Order, Person

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            orders = int(connection.scalar(select(func.count(Order.id))) or 0)
            persons = int(
                connection.scalar(select(func.count(Person.id)).where(Person.merged_into_id.is_(None))) or 0
            )
    finally:
        engine.dispose()
    return orders, persons


def run_target(target: str, round_no: int, args: LoadArgs, connections: int | None = None) -> TargetRun:
    """Serve ``target`` (``ours`` or ``bare``) on a fresh database, warm it up, then measure it."""
    connections = connections or args.connections
    duration_s = args.duration_s if connections == args.connections else args.serial_s
    if target == "ours":
        url, headers = _setup_ours()
        factory, env, path = "benchmarks.api_load:ours_app", {"BENCH_API_URL": url}, "/api/v1/orders"
    else:
        url = recreate_postgres(BARE_DB)
        engine = make_engine(url)
        create_schema(engine)
        engine.dispose()
        headers, factory, env, path = (
            {},
            "benchmarks.bare_app:create_bare_app",
            {"BENCH_BARE_URL": url},
            "/orders",
        )
    checkpoint_postgres()
    generate = wrk_load if args.generator == "wrk" else python_load
    with serve(factory, env) as (base, pid):
        generate(base, path, headers, f"w{round_no}", args.warmup_s, connections, round_no)
        cpu_before = _cpu_seconds(pid)
        load = generate(base, path, headers, f"m{round_no}", duration_s, connections, 100 + round_no)
        cpu = _cpu_seconds(pid) - cpu_before
    if target == "ours":
        stored, persons = _count_ours(url)
        drop_postgres(OURS_DB)
    else:
        engine = make_engine(url)
        with engine.connect() as connection:
            stored = int(connection.scalar(select(func.count(bare_orders.c.id))) or 0)
        engine.dispose()
        persons = 0
        drop_postgres(BARE_DB)
    run = TargetRun(target, load, cpu, stored, persons, connections)
    print(
        f"  api {target} round {round_no} ({connections} conns): {load.throughput:,.0f} req/s, "
        f"p50 {load.p50_ms:.1f} ms, "
        f"p99 {load.p99_ms:.1f} ms, {load.errors} errors",
        file=sys.stderr,
        flush=True,
    )
    if stored < load.requests - load.errors:
        raise RuntimeError(f"{target}: {load.requests - load.errors} answered but {stored} orders stored")
    return run


@dataclass(frozen=True)
class LoadArgs:
    """How hard and how long to load each app."""

    duration_s: float = 20
    warmup_s: float = 3
    connections: int = 32
    serial_s: float = 10
    generator: str = "wrk"


def pick_generator(choice: str) -> str:
    """``auto``: wrk when installed, else the Python client."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk), use --loadgen python")
    return choice


@dataclass
class ApiComparison:
    """Every run of both apps, in the order they ran."""

    args: LoadArgs
    runs: list[TargetRun]

    def of(self, target: str, connections: int | None = None) -> list[TargetRun]:
        wanted = connections or self.args.connections
        return [run for run in self.runs if run.target == target and run.connections == wanted]

    def throughput(self, target: str, connections: int | None = None) -> float:
        """Requests a second over all of the target's measured windows together."""
        runs = self.of(target, connections)
        return sum(r.load.requests for r in runs) / sum(r.load.seconds for r in runs)

    @property
    def ratio(self) -> float:
        return self.throughput("ours") / self.throughput("bare")

    @property
    def serial_ratio(self) -> float:
        return self.throughput("ours", 1) / self.throughput("bare", 1)


def compare(args: LoadArgs) -> ApiComparison:
    """Measure bare, ours, ours, bare under load, then bare and ours with one connection."""
    runs = [run_target(target, i, args) for i, target in enumerate(("bare", "ours", "ours", "bare"), 1)]
    runs += [run_target(target, i, args, connections=1) for i, target in enumerate(("bare", "ours"), 5)]
    return ApiComparison(args, runs)


def render(comparison: ApiComparison, command: str, machine: str, server: str | None) -> tuple[str, str]:
    """Return the docs/benchmarks.md section (key, body) for the API comparison."""
    args = comparison.args
    rows = []
    for run in comparison.runs:
        load = run.load
        label = "ours: `POST /api/v1/orders`" if run.target == "ours" else "bare: FastAPI + 1 INSERT"
        cpu_ms = 1000 * run.server_cpu_s / max(load.requests, 1)
        rows.append(
            f"| {label} | {run.connections} | {fmt_int(load.throughput)} | {load.p50_ms:,.1f} | "
            f"{load.p99_ms:,.1f} | "
            f"{load.errors} | {fmt_int(load.requests)} | {cpu_ms:.2f} |"
        )
    ours = comparison.of("ours")
    stored = sum(run.stored_orders for run in ours)
    persons = sum(run.live_persons for run in ours)
    verdict = "meets" if comparison.ratio >= 0.5 else "**misses**"
    generator = comparison.runs[0].load.generator
    body = f"""\
## `POST /api/v1/orders` under load vs a bare FastAPI INSERT (PostgreSQL)

Measured {stamp()} with `{command}`.
Machine: {machine}.{f" Server: {server}." if server else ""}
Load: {generator} on loopback, {args.connections} connections, {args.warmup_s:g} s warm-up then
{args.duration_s:g} s measured per run; runs in the order bare, ours, ours, bare, each app served by
uvicorn (1 worker, `make_engine`'s pool of 10 + 20) on its own fresh database; then bare and ours
once more with a single connection ({args.serial_s:g} s each). Every request is a distinct `pos`
order with 2 items; 90% carry a phone from a pool of {PHONE_POOL:,} (four formats), so most attach
to a person an earlier request created. Bare is a sync endpoint with one transaction per request;
ours is async and its intake writes the orders that arrive together in one transaction (group
commit, `ingest/intake.py`), each request still answered with its own outcome.

| run | conns | req/s | p50 ms | p99 ms | errors | requests | server CPU ms/req |
|---|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}
| **ratio ours / bare** under load ({args.connections} conns) | | **{comparison.ratio:.3f}** | | | | | |
| ratio ours / bare, one connection | | {comparison.serial_ratio:.3f} | | | | | |

Target: at least 0.5 of the bare endpoint's throughput under load ({verdict}: {comparison.ratio:.2f}).
With one connection nothing can share a transaction, so that ratio is what a lone order costs
beside one INSERT: OneID resolution under its locks, the lines, the loyalty step.
Ours stored {fmt_int(stored)} orders (warm-up included) for {fmt_int(persons)} live persons over its
two runs. "server CPU" is the uvicorn process's user + system time during the measured window
divided by its requests (PostgreSQL's own CPU is not in it).
"""
    return "api-postgres", body

"""One command for every benchmark: ``uv run python -m benchmarks.run [--orders N] [--only ...]``.

It generates (or reuses) the data, runs the import comparison on each backend asked for and the
API load comparison on PostgreSQL, then rewrites the measured sections of docs/benchmarks.md.
A section is written as soon as its benchmark finishes, so a long run interrupted later keeps
what it measured.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from benchmarks import api_load, bulk_import, insight_nightly, loyalty_replay, settle_load
from benchmarks.data import DATA_DIR, ensure_orders
from benchmarks.databases import postgres_settings
from benchmarks.report import DOC, machine_line, write_sections


def _postgres_line() -> str:
    settings = postgres_settings()
    return "PostgreSQL " + ", ".join(f"{name}={value}" for name, value in settings.items())


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run what they ask for, write the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--orders",
        type=int,
        default=None,
        help="orders in the import file (default 1,000,000; insight 10,000,000)",
    )
    parser.add_argument("--members", type=int, default=1_000_000, help="members of the insight data set")
    parser.add_argument(
        "--lifetimes-rows",
        type=int,
        default=None,
        help="insight: compare with lifetimes on the first N purchases only (whole histories; default all)",
    )
    parser.add_argument(
        "--only",
        choices=("import", "loyalty", "api", "settle", "insight"),
        help="run one benchmark (default: all)",
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--duration", type=float, default=20, help="measured seconds per API run")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per API run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent API connections")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--wait-for-api", type=float, default=20, help="minutes to wait for the API to import"
    )
    args = parser.parse_args(argv)
    orders = args.orders if args.orders is not None else 1_000_000
    command = "uv run python -m benchmarks.run" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    server = _postgres_line() if "postgres" in backends else None

    if args.only in (None, "import"):
        started = time.perf_counter()
        data = ensure_orders(orders)
        print(
            f"data: {data.csv_path.name} ready in {time.perf_counter() - started:.1f} s "
            f"({data.meta['csv_bytes'] / 2**20:,.0f} MiB)",
            file=sys.stderr,
        )
        for backend in backends:
            machine = machine_line()  # per benchmark: the load average and the code revision it ran on
            comparison = bulk_import.compare(backend, data, DATA_DIR / "run")
            key, body = bulk_import.render(
                comparison, command, machine, server if backend == "postgres" else None
            )
            write_sections({key: body})
            print(
                f"import {backend}: ours {comparison.ours_rows_per_s:,.0f} rows/s, raw "
                f"{comparison.raw_rows_per_s:,.0f} rows/s, ratio {comparison.ratio:.3f}, peak "
                f"{comparison.ours['peak_rss_mb']:,.0f} MiB",
                file=sys.stderr,
            )

    if args.only in (None, "loyalty"):
        data = ensure_orders(orders)
        for backend in backends:
            machine = machine_line()
            replay = loyalty_replay.compare(backend, data, DATA_DIR / "run")
            key, body = loyalty_replay.render(
                replay, command, machine, server if backend == "postgres" else None
            )
            write_sections({key: body})
            print(
                f"loyalty {backend}: ours {replay.ours['seconds']:,.1f} s, raw {replay.raw['seconds']:,.1f}"
                f" s for {replay.ledger_rows:,} ledger rows, ratio {replay.ratio:.3f}",
                file=sys.stderr,
            )

    if args.only in (None, "api"):
        if "postgres" not in backends:
            print("api: runs on PostgreSQL only; skipped for --backend sqlite", file=sys.stderr)
        else:
            problem = api_load.wait_for_api(args.wait_for_api * 60)
            if problem:
                raise SystemExit(f"api: {problem}")
            load_args = api_load.LoadArgs(
                duration_s=args.duration,
                warmup_s=args.warmup,
                connections=args.connections,
                generator=api_load.pick_generator(args.loadgen),
            )
            machine = machine_line()
            api = api_load.compare(load_args)
            key, body = api_load.render(api, command, machine, server or _postgres_line())
            write_sections({key: body})
            print(
                f"api: ours {api.throughput('ours'):,.0f} req/s, bare {api.throughput('bare'):,.0f} "
                f"req/s, ratio {api.ratio:.3f}",
                file=sys.stderr,
            )
    if args.only in (None, "settle") and "postgres" in backends:
        load_args = api_load.LoadArgs(
            duration_s=args.duration,
            warmup_s=args.warmup,
            connections=args.connections,
            generator=api_load.pick_generator(args.loadgen),
        )
        machine = machine_line()
        settle = settle_load.compare(load_args)
        key, body = settle_load.render(settle, command, machine, server or _postgres_line())
        write_sections({key: body})
        print(
            f"settle: {settle.throughput('settle'):,.0f} req/s, bare {settle.throughput('bare'):,.0f} req/s,"
            f" ratio {settle.ratio:.3f}",
            file=sys.stderr,
        )
    if args.only in (None, "insight"):
        machine = machine_line()
        insight = insight_nightly.run(
            args.members,
            args.orders if args.orders is not None else 10 * args.members,
            lifetimes_rows=args.lifetimes_rows,
        )
        key, body = insight_nightly.render(insight, command, machine)
        write_sections({key: body})
        speedup = insight.summary["lifetimes_seconds"] / insight.summary["ours_seconds"]
        print(
            f"insight: bare {insight.bare:.3f} s, nightly {insight.next.seconds:.1f} s "
            f"({insight.next.seconds / insight.bare:.0f}×), first night {insight.first.seconds:.1f} s; "
            f"summary {speedup:.1f}× faster than lifetimes",
            file=sys.stderr,
        )
    print(f"figures written to {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()

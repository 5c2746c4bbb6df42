"""docs/benchmarks.md: the machine, and one section per measured benchmark, replaced run by run.

Each section sits between ``<!-- bench:KEY -->`` and ``<!-- /bench:KEY -->`` markers, so a run that
measures only the import on SQLite rewrites that section and keeps every other one (including the
hand-written ``notes`` section) as it was. Sections are ordered by their key on every write.
"""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
_SECTION = re.compile(r"<!-- bench:(?P<key>[\w.-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=key) -->\n", re.S)

INTRO = """\
# Benchmarks

How fast the foundation is, measured against the plainest way of doing the same work **on the same
machine, in the same run**. Shared machines are noisy, so read the **ratios** first: an absolute
figure only says what this machine did that day.

Run them all (about 15 minutes on a 2-core machine at the default size, most of it the million-order
imports; the first run also generates the data, in about 15 s):

```
make bench                                    # = uv run python -m benchmarks.run
uv run python -m benchmarks.run --orders 200000 --only import --backend sqlite
uv run python -m benchmarks.run --only api    # needs PostgreSQL; uses wrk when installed
uv run python -m benchmarks.run --only settle # checkout settle under load (PostgreSQL, needs wrk)
uv run python -m benchmarks.run --only loyalty --orders 200000 --backend sqlite   # earning on replay
uv run python -m benchmarks.run --only insight   # nightly insight run, 1M members / 10M orders (DuckDB)
```

PostgreSQL is reached as `postgres@127.0.0.1:5432` (override with `BENCH_PG_HOST`, `BENCH_PG_PORT`,
`BENCH_PG_USER`); the benchmarks create and drop their own databases (`memberops_bench*`). Generated
data is cached in `benchmarks/.data/` (git-ignored). The load generator is `wrk` when it is on the
PATH (`apt-get install -y wrk`), else a Python asyncio + httpx client, which is slower and takes more
of the CPU the server needs, so compare only figures made with the same generator. Each section below
says which it used, and when, how and on what it was measured. Nothing here is asserted by the test
suite: timings are not tests.
"""

ORDER = ("import", "api", "notes")


def _order(key: str) -> tuple[int, int, int, str]:
    """Import sections first (SQLite, then PostgreSQL, biggest first), then the API, then notes."""
    parts = key.split("-")
    head = parts[0]
    backend = {"sqlite": 0, "postgres": 1}.get(parts[1] if len(parts) > 1 else "", 2)
    size = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
    return (ORDER.index(head) if head in ORDER else len(ORDER), backend, -size, key)


def read_sections(path: Path = DOC) -> dict[str, str]:
    """Return the sections already in ``path`` by key (empty when the file does not exist yet)."""
    if not path.exists():
        return {}
    return {match["key"]: match["body"] for match in _SECTION.finditer(path.read_text())}


def write_sections(updates: dict[str, str], path: Path = DOC) -> None:
    """Replace (or add) the sections in ``updates`` and rewrite the file, keeping the others."""
    sections = read_sections(path)
    sections.update(updates)
    parts = [INTRO]
    for key in sorted(sections, key=_order):
        body = sections[key].rstrip("\n") + "\n"
        parts.append(f"<!-- bench:{key} -->\n{body}<!-- /bench:{key} -->\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _git_revision() -> str:
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        # Only the code under test counts: the benchmarks' own output (this doc) is always dirty.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "pyproject.toml", "uv.lock"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{revision}{' + uncommitted changes' if dirty else ''}"


def machine_line() -> str:
    """One line saying what the figures were measured on (and how busy it was when the run began)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} CPUs ({_cpu_model()}), {_memory_gib():.1f} GiB RAM, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"load average {load:.2f} at the start; code at {_git_revision()}"
    )


def stamp() -> str:
    """The date and time of a measurement, in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_int(value: float) -> str:
    """``1234567`` -> ``1,234,567``."""
    return f"{round(value):,}"

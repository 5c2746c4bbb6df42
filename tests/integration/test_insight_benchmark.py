"""The insight benchmark runs end to end at a tiny size (timings are not tests; this only proves it works).

``benchmarks/insight_nightly.py`` measures the nightly run at a million members; here it runs at
2,000 members and 20,000 orders in a temporary directory, so a change that breaks the generator,
the store it builds, the nightly run on a kept DuckDB file or the lifetimes comparison fails fast.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from benchmarks import insight_nightly
from benchmarks.insight_data import ensure_data


def test_insight_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    comparison = insight_nightly.run(2_000, 20_000, directory=tmp_path)
    key, body = insight_nightly.render(
        comparison, "uv run python -m benchmarks.run --only insight", "a machine"
    )

    counts = comparison.data.counts
    assert (counts["persons"], counts["memberships"], counts["orders"]) == (2_360, 2_000, 20_000)
    assert len(comparison.first.tags) == 3 and len(comparison.first.segments) == 6
    assert [step.name for step in comparison.next.steps if step.kind == "analysis"] == [
        "rfm",
        "lifecycle",
        "layers",
        "kpis",
        "cross",
        "cohorts",
        "magic-number",
        "preferences",
    ]
    assert comparison.summary["same"] is True
    assert key == "insight-nightly-2000"
    assert "Nightly insight run vs one bare DuckDB RFM query, 2,000 members, 20,000 orders" in body
    # The data set is deterministic: generated again, it holds the same rows.
    again = ensure_data(2_000, 20_000, tmp_path / "again", log=lambda _: None)
    assert again.counts == counts
    assert _fingerprint(again.path) == _fingerprint(comparison.data.path)


def _fingerprint(path: Path) -> tuple[int, int]:
    """A checksum over every order and line (ids, buyer, time, amounts, categories)."""
    with duckdb.connect(str(path), read_only=True) as connection:
        found = connection.execute(
            "SELECT (SELECT sum(hash(id, person_id, paid_at, amount_fen, store_id)) FROM orders),"
            " (SELECT sum(hash(order_id, category, amount_fen)) FROM order_lines)"
        ).fetchone()
    assert found is not None
    return int(found[0]), int(found[1])

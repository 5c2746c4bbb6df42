"""The query forms of the pure rules agree with the rules themselves, on every engine we embed.

The scoring, class and stage expressions are built from the same cut points and bounds as
``memberops.insight.rules``; here both are evaluated over a grid of values (on DuckDB and SQLite)
and must agree row for row.
"""

from __future__ import annotations

import itertools
from typing import Any

import ibis
import pyarrow as pa
import pytest

from memberops.insight import lifecycle, rfm
from memberops.insight.rules import LifecycleSettings, RfmCuts, rfm_class, score, stage


def _backend(name: str) -> Any:
    return ibis.duckdb.connect() if name == "duckdb" else ibis.sqlite.connect()


@pytest.mark.parametrize("engine_name", ["duckdb", "sqlite"])
def test_scores_and_classes_match_the_rules(engine_name: str) -> None:
    grid = list(itertools.product([0, 5, 6, 20, 90], [1, 2, 3], [0, 7000, 7001, 20000]))
    backend = _backend(engine_name)
    table = backend.create_table(
        "grid",
        pa.table(
            {
                "person_id": list(range(len(grid))),
                "recency_days": [r for r, _, _ in grid],
                "frequency": [f for _, f, _ in grid],
                "monetary_fen": [m for _, _, m in grid],
            }
        ),
    )
    cuts = RfmCuts(recency_days=6, frequency=1, monetary_fen=7000)
    score_cuts = (5, 6, 20, 90)

    rows = (
        table.mutate(
            rfm_class=rfm._class(table, cuts),
            r_score=rfm._score(table.recency_days, score_cuts, lower_is_better=True),
            m_score=rfm._score(table.monetary_fen, (0, 7000, 7001), lower_is_better=False),
        )
        .order_by("person_id")
        .to_pyarrow()
        .to_pylist()
    )

    for row, (r, f, m) in zip(rows, grid, strict=True):
        assert row["rfm_class"] == rfm_class(r, f, m, cuts).value
        assert row["r_score"] == score(r, score_cuts, lower_is_better=True)
        assert row["m_score"] == score(m, (0, 7000, 7001))


@pytest.mark.parametrize("engine_name", ["duckdb", "sqlite"])
def test_stages_match_the_rules(engine_name: str) -> None:
    settings = LifecycleSettings(
        cycle_days=10, new_cycles=2, active_cycles=1, silent_cycles=3, sleeping_cycles=5
    )
    grid = [
        (first, last)
        for first in (0, 9, 10, 19, 20, 60)
        for last in (0, 9, 10, 29, 30, 49, 50)
        if last <= first
    ]
    grid.append((None, None))
    backend = _backend(engine_name)
    table = backend.create_table(
        "grid",
        pa.table(
            {
                "person_id": list(range(len(grid))),
                "first": pa.array([first for first, _ in grid], pa.int64()),
                "last": pa.array([last for _, last in grid], pa.int64()),
            }
        ),
    )

    rows = table.mutate(stage=lifecycle._stage(table["first"], table["last"], settings)).order_by("person_id")

    expected = [stage(first, last, settings).value for first, last in grid]
    assert [row["stage"] for row in rows.to_pyarrow().to_pylist()] == expected

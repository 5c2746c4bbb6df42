"""The purchase summary equals ``lifetimes.utils.summary_data_from_transaction_data`` on CDNOW.

CDNOW (69,659 transactions of 23,570 customers, 1997-01 to 1998-06) ships inside the ``lifetimes``
wheel; it is read with ``importlib.resources`` (``lifetimes.datasets`` itself imports the removed
``pkg_resources``). lifetimes 0.11.3 is a dev-only dependency: its summary function works with
pandas 3 and NumPy 2. Our summary runs on DuckDB and on SQLite from the same expression and must
match lifetimes customer by customer: frequency, recency and T exactly, the monetary value to
floating-point noise (ours is exact: repeat fen ÷ repeat days).
"""

from __future__ import annotations

import importlib.resources
import math
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

import ibis
import pandas as pd
import pyarrow as pa
import pytest
from lifetimes.utils import summary_data_from_transaction_data

from memberops.insight.base import purchase_days
from memberops.insight.periods import day_number
from memberops.insight.summary import monetary_value, purchase_summary

OBSERVATION_END = date(1998, 6, 30)


def _cdnow_lines() -> list[list[str]]:
    text = (importlib.resources.files("lifetimes") / "datasets" / "CDNOW_master.txt").read_text()
    lines = [line.split() for line in text.splitlines()[1:] if line.strip()]
    assert len(lines) == 69_659
    return lines


@pytest.fixture(scope="module")
def lifetimes_summary() -> pd.DataFrame:
    lines = _cdnow_lines()
    frame = pd.DataFrame(
        {
            "customer_id": [int(line[0]) for line in lines],
            "date": pd.to_datetime([line[1] for line in lines], format="%Y%m%d"),
            "dollar_value": [float(line[3]) for line in lines],
        }
    )
    return summary_data_from_transaction_data(
        frame,
        "customer_id",
        "date",
        monetary_value_col="dollar_value",
        observation_period_end=OBSERVATION_END.isoformat(),
        freq="D",
    )


@pytest.fixture(scope="module")
def transactions() -> pa.Table:
    """CDNOW as purchase facts: person, business day number, amount in integer cents (fen)."""
    lines = _cdnow_lines()
    return pa.table(
        {
            "person_id": pa.array([int(line[0]) for line in lines], pa.int64()),
            "day": pa.array(
                [
                    day_number(date.fromisoformat(f"{line[1][:4]}-{line[1][4:6]}-{line[1][6:]}"))
                    for line in lines
                ],
                pa.int64(),
            ),
            "net_fen": pa.array([int(Decimal(line[3]) * 100) for line in lines], pa.int64()),
        }
    )


def _backend(name: str, table: pa.Table) -> Any:
    backend = ibis.duckdb.connect() if name == "duckdb" else ibis.sqlite.connect()
    backend.create_table("facts", table)
    return backend


@pytest.mark.parametrize("engine_name", ["duckdb", "sqlite"])
def test_summary_equals_lifetimes_on_cdnow(
    engine_name: str, transactions: pa.Table, lifetimes_summary: pd.DataFrame
) -> None:
    backend = _backend(engine_name, transactions)
    facts = backend.table("facts")

    ours = purchase_summary(purchase_days(facts), day_number(OBSERVATION_END)).to_pyarrow().to_pylist()

    assert len(ours) == len(lifetimes_summary) == 23_570
    theirs = lifetimes_summary.to_dict("index")
    mismatches = []
    for row in ours:
        expected = theirs[row["person_id"]]
        monetary = monetary_value(row["repeat_fen"], row["frequency"])
        same = (
            row["frequency"] == expected["frequency"]
            and row["recency"] == expected["recency"]
            and row["T"] == expected["T"]
            and math.isclose(float(monetary), expected["monetary_value"], rel_tol=1e-12, abs_tol=1e-9)
        )
        if not same:
            mismatches.append((row, expected))
    assert mismatches == []
    # Spot checks against the published CDNOW summary (customer 3: 5 repeats, 511 days, T 544).
    by_person = {row["person_id"]: row for row in ours}
    assert (by_person[3]["frequency"], by_person[3]["recency"], by_person[3]["T"]) == (5, 511, 544)
    assert monetary_value(by_person[3]["repeat_fen"], 5) == Fraction("27.14")
    assert monetary_value(0, 0) == 0

"""The per-person purchase summary that CLV models start from (frequency, recency, T, monetary).

Same conventions as ``lifetimes.utils.summary_data_from_transaction_data`` with daily periods, so
a BG/NBD or Gamma-Gamma fit can take it as it is: purchases on one business day are one
transaction; ``frequency`` is the number of repeat purchase days, ``recency`` the days from the
first to the last purchase day, ``T`` the days from the first purchase day to the as-of date, and
the monetary value the mean of the repeat days' totals (0 without a repeat). It is one grouped
query, so it runs set-based on the engine, never person by person in Python.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir


def purchase_summary(days: ir.Table, as_of_day: int) -> ir.Table:
    """Return per person: ``frequency, recency, T, repeat_fen`` (repeat days' total, in fen).

    ``days`` has ``person_id, day, amount_fen`` with one row per person and purchase day, on or
    before ``as_of_day``. The monetary value is ``repeat_fen / frequency`` (see ``monetary_value``).
    """
    ranked = days.mutate(first_day=days.day.min().over(group_by=days.person_id))
    grouped = ranked.group_by(ranked.person_id).agg(
        first_day=ranked.first_day.min(),
        last_day=ranked.day.max(),
        purchase_days=ranked.count(),
        total_fen=ranked.amount_fen.sum(),
        first_fen=ibis.cases((ranked.day == ranked.first_day, ranked.amount_fen), else_=0).sum(),
    )
    return grouped.select(
        person_id=grouped.person_id,
        frequency=(grouped.purchase_days - 1).cast("int64"),
        recency=(grouped.last_day - grouped.first_day).cast("int64"),
        T=(ibis.literal(as_of_day, type="int64") - grouped.first_day).cast("int64"),
        repeat_fen=(grouped.total_fen - grouped.first_fen).cast("int64"),
    )

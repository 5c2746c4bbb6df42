"""How well OneID recovered the people behind the records: pairwise precision and recall.

Counting pairs of records is the usual way to score an entity resolution: precision asks how many of
the pairs OneID put in one person really are one person; recall asks how many of the pairs it *could*
have joined (same person and connected through shared identifiers, see ``demo.truth``) it did join.
Pairs are counted from contingency tables (sum of C(n, 2) over hash groups), so twelve million records
take seconds, not a quadratic pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa


@dataclass(frozen=True)
class OneIdAccuracy:
    """Pair counts and the precision and recall built from them (1.0 when a denominator is 0)."""

    records: int
    predicted_pairs: int
    true_predicted_pairs: int
    recoverable_pairs: int
    recovered_pairs: int
    precision: float
    recall: float


def oneid_accuracy(
    true_person: Sequence[int] | npt.NDArray[np.integer],
    component: Sequence[int | None] | npt.NDArray[np.integer],
    predicted_person: Sequence[int | None] | npt.NDArray[np.integer],
) -> OneIdAccuracy:
    """Score predicted persons against the truth, one entry per well-formed identified record.

    A record whose predicted person (or component) is None stands alone: it pairs with nothing.
    Sequences may be lists, numpy arrays or pyarrow arrays (nulls as None).
    """
    columns = {
        "truth": _singleton_nulls(true_person),
        "component": _singleton_nulls(component),
        "predicted": _singleton_nulls(predicted_person),
    }
    if len({len(column) for column in columns.values()}) != 1:
        raise ValueError("true_person, component and predicted_person must have the same length")
    table = pa.table(columns)
    predicted_pairs = _pairs(table, ["predicted"])
    true_predicted = _pairs(table, ["truth", "predicted"])
    recoverable = _pairs(table, ["truth", "component"])
    recovered = _pairs(table, ["truth", "component", "predicted"])
    return OneIdAccuracy(
        records=table.num_rows,
        predicted_pairs=predicted_pairs,
        true_predicted_pairs=true_predicted,
        recoverable_pairs=recoverable,
        recovered_pairs=recovered,
        precision=_ratio(true_predicted, predicted_pairs),
        recall=_ratio(recovered, recoverable),
    )


def _singleton_nulls(values: Any) -> pa.Array:
    """The values as int64, every null replaced by a value of its own above all others."""
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, pa.int64())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.int64())
    if array.null_count == 0:
        return array
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    raw = array.fill_null(0).to_numpy(zero_copy_only=False).copy()
    above = int(raw[valid].max(initial=0)) + 1
    raw[~valid] = above + np.arange(int((~valid).sum()), dtype=np.int64)
    return pa.array(raw, pa.int64())


def _pairs(table: pa.Table, keys: list[str]) -> int:
    """Number of unordered record pairs that agree on every key (a hash group-by, no sort)."""
    if table.num_rows == 0:
        return 0
    sizes = table.group_by(keys).aggregate([([], "count_all")]).column("count_all").to_numpy()
    return int((sizes.astype(np.int64) * (sizes.astype(np.int64) - 1) // 2).sum())


def _ratio(numerator: int, denominator: int) -> float:
    return 1.0 if denominator == 0 else numerator / denominator

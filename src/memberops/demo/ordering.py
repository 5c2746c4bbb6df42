"""Sort rows by several non-negative integer keys with one argsort when they fit in 63 bits.

``numpy.lexsort`` makes one pass per key; packing the keys into one int64 and sorting once is about
twice as fast on ten million rows, and a stable sort keeps ties in their (deterministic) input order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


def stable_order(*keys: npt.NDArray[np.integer]) -> I64:
    """Row order sorted by the keys, most significant first; ties keep their input order."""
    widths = [max(1, int(np.max(key, initial=0)).bit_length()) for key in keys]
    if any(int(np.min(key, initial=0)) < 0 for key in keys) or sum(widths) > 63:
        order: I64 = np.lexsort(tuple(reversed(keys)))
        return order
    packed = np.zeros(keys[0].size, dtype=np.int64)
    for key, width in zip(keys, widths, strict=True):
        packed <<= width
        packed |= key.astype(np.int64)
    packed_order: I64 = np.argsort(packed, kind="stable")
    return packed_order

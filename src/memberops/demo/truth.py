"""Which records OneID could possibly link: connected components of the identifier graph.

Two well-formed records are connected when they carry a common identifier. Identifiers are never
shared between people, so every component lies inside one person; within a person, identifier kinds
are joined by records that carry two or more of them. Working per person on 8-bit masks keeps this a
handful of vectorised passes instead of a union-find over millions of records.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from memberops.demo.catalogue import IdType

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
Bools = npt.NDArray[np.bool_]

KINDS = len(IdType)
NO_COMPONENT = -1
#: Index of the lowest set bit of every byte (0 for 0, never used).
_LOWEST_BIT = np.asarray(
    [(value & -value).bit_length() - 1 if value else 0 for value in range(256)], dtype=np.int64
)
_BIT_COUNT = np.asarray([value.bit_count() for value in range(256)], dtype=np.int64)


def linked_kinds(person: I64, mask: U8, usable: Bools, persons: int) -> U8:
    """For every identifier kind and person (shape kinds × persons): the mask of kinds linked to it."""
    linked = np.repeat((1 << np.arange(KINDS)).astype(np.uint8)[:, None], persons, axis=1)
    joining = usable & (_BIT_COUNT[mask] >= 2)
    owner, bits = person[joining], mask[joining]
    for kind in range(KINDS):
        rows = (bits >> kind) & 1 == 1
        np.bitwise_or.at(linked[kind], owner[rows], bits[rows])
    for _ in range(3):  # 2**3 ≥ 8 kinds: three squaring rounds reach the transitive closure
        closed = linked.copy()
        for kind in range(KINDS):
            for other in range(KINDS):
                reaches = (linked[kind] >> other) & 1 == 1
                closed[kind] |= np.where(reaches, linked[other], 0).astype(np.uint8)
        linked = closed
    return linked


def components(person: I64, mask: U8, usable: Bools, persons: int) -> I64:
    """Component of each record (person × 16 + its component's smallest kind), -1 where none.

    A record has no component when it is malformed (the importer rejects it) or carries no identifier.
    """
    usable = usable & (mask != 0)
    linked = linked_kinds(person, mask, usable, persons)
    first_kind = _LOWEST_BIT[mask]
    smallest = _LOWEST_BIT[linked[first_kind, person]]
    component: I64 = np.where(usable, person * 16 + smallest, NO_COMPONENT)
    return component

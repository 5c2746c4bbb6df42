"""Garbage collection paced by batches: paused inside, restored after, cycles still collected."""

from __future__ import annotations

import gc
import weakref

from memberops.kit.memory import collect_between_batches


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_collection_is_paused_inside_and_restored_after() -> None:
    assert gc.isenabled()
    with collect_between_batches():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_cycle_left_by_a_batch_is_collected_after_it() -> None:
    with collect_between_batches() as after_batch:
        node = Node()
        alive = weakref.ref(node)
        del node
        assert alive() is not None  # automatic collection is off
        after_batch()
        assert alive() is None


def test_collection_is_restored_when_the_job_fails() -> None:
    try:
        with collect_between_batches():
            raise RuntimeError("the import failed")
    except RuntimeError:
        pass
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0

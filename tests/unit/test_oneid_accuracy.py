"""Pairwise OneID precision and recall, on fixtures small enough to count the pairs by hand."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from memberops.demo.accuracy import OneIdAccuracy, oneid_accuracy


def test_perfect_prediction_scores_one() -> None:
    # Given person 1 with records a, b (component 10) and person 2 with c (component 20),
    # when OneID puts a and b together and c alone,
    result = oneid_accuracy([1, 1, 2], [10, 10, 20], [7, 7, 8])

    # then the one predicted pair (a, b) is right and the one recoverable pair (a, b) is found.
    assert result == OneIdAccuracy(
        records=3,
        predicted_pairs=1,
        true_predicted_pairs=1,
        recoverable_pairs=1,
        recovered_pairs=1,
        precision=1.0,
        recall=1.0,
    )


def test_over_merge_lowers_precision_and_a_missing_link_lowers_recall() -> None:
    # Records:      a   b   c   d   e
    # true person:  1   1   1   2   2
    # component:   10  10  11  20  20   (c is person 1 but shares no identifier with a or b)
    # predicted:    5   5   5   5   -   (e was not resolved)
    result = oneid_accuracy([1, 1, 1, 2, 2], [10, 10, 11, 20, 20], [5, 5, 5, 5, None])

    # Predicted pairs: C(4, 2) = 6 among a, b, c, d; of those ab, ac, bc are one person: 3.
    # Recoverable pairs: ab (person 1, component 10) and de (person 2, component 20): 2; only ab is found.
    assert result == OneIdAccuracy(
        records=5,
        predicted_pairs=6,
        true_predicted_pairs=3,
        recoverable_pairs=2,
        recovered_pairs=1,
        precision=0.5,
        recall=0.5,
    )


def test_unresolved_records_pair_with_nothing() -> None:
    # Three records of one person and component, none resolved: no predicted pair, 3 recoverable, 0 found.
    result = oneid_accuracy([4, 4, 4], [40, 40, 40], [None, None, None])

    assert (result.predicted_pairs, result.true_predicted_pairs) == (0, 0)
    assert (result.recoverable_pairs, result.recovered_pairs) == (3, 0)
    assert result.precision == 1.0
    assert result.recall == 0.0


def test_split_person_counts_only_the_pairs_kept_together() -> None:
    # One person, one component, six records; OneID splits them 3 + 2 + 1.
    result = oneid_accuracy([9] * 6, [90] * 6, [1, 1, 1, 2, 2, 3])

    # Predicted pairs: C(3,2) + C(2,2) = 4, all correct; recoverable C(6,2) = 15, recovered 4.
    assert result.predicted_pairs == 4
    assert result.true_predicted_pairs == 4
    assert result.recoverable_pairs == 15
    assert result.recovered_pairs == 4
    assert result.precision == 1.0
    assert result.recall == pytest.approx(4 / 15)


def test_a_merge_across_components_of_one_person_is_precise_but_not_needed_for_recall() -> None:
    # Person 3 has two components (30: a, b; 31: c, d); OneID joins all four (say, by a rule beyond
    # identifiers): 6 predicted pairs, all the same person; recoverable only ab and cd, both found.
    result = oneid_accuracy([3, 3, 3, 3], [30, 30, 31, 31], [6, 6, 6, 6])

    assert (result.predicted_pairs, result.true_predicted_pairs) == (6, 6)
    assert (result.recoverable_pairs, result.recovered_pairs) == (2, 2)


def test_empty_input_scores_one() -> None:
    result = oneid_accuracy([], [], [])

    assert result == OneIdAccuracy(0, 0, 0, 0, 0, 1.0, 1.0)


def test_numpy_and_arrow_inputs_give_the_same_counts_as_lists() -> None:
    truth, component, predicted = [1, 1, 1, 2, 2], [10, 10, 11, 20, 20], [5, 5, 5, 5, None]
    as_lists = oneid_accuracy(truth, component, predicted)

    as_numpy = oneid_accuracy(np.asarray(truth), np.asarray(component), pa.array(predicted, pa.int64()))
    as_chunks = oneid_accuracy(truth, pa.chunked_array([[10, 10], [11, 20, 20]]), predicted)

    assert as_numpy == as_lists
    assert as_chunks == as_lists


def test_null_ids_never_collide_with_real_ones() -> None:
    # The records with None must not join the record whose id happens to be the largest value + 1.
    result = oneid_accuracy([1, 1, 1], [10, 10, 10], [None, 1, 2])

    assert result.predicted_pairs == 0


def test_sequences_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        oneid_accuracy([1, 2], [10, 20], [1])

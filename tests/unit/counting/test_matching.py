from __future__ import annotations

import numpy as np
import pytest

from pipeline.counting.matching import linear_assignment


def test_assignment_is_optimal_not_greedy():
    # Greedy takes (0,0)=0.1 first and then must pair 1 with 1 at 0.9 (total 1.0);
    # the optimum is (0,1)+(1,0) = 0.3 + 0.3.
    cost = np.array([[0.1, 0.3], [0.3, 0.9]])
    result = linear_assignment(cost, max_cost=0.95)
    assert result.matches.tolist() == [[0, 1], [1, 0]]


def test_pairs_above_the_limit_are_left_unmatched():
    cost = np.array([[0.2, 0.9], [0.95, 0.99]])
    result = linear_assignment(cost, max_cost=0.8)
    assert result.matches.tolist() == [[0, 0]]
    assert result.unmatched_rows.tolist() == [1]
    assert result.unmatched_cols.tolist() == [1]


def test_limit_is_a_price_for_leaving_pairs_unmatched():
    # Two mediocre pairs (0.7 + 0.7) cost more than one good pair plus leaving a
    # row and a column unmatched (0.1 + 0.8), as with lapjv's cost_limit; a solver
    # that maximised the number of matches first would pick the mediocre pairs.
    cost = np.array([[0.1, 0.7], [0.7, np.inf]])
    result = linear_assignment(cost, max_cost=0.8)
    assert result.matches.tolist() == [[0, 0]]


def test_pair_exactly_at_limit_is_matched():
    assert linear_assignment(np.array([[0.8]]), max_cost=0.8).matches.tolist() == [[0, 0]]


def test_non_finite_entries_are_never_matched():
    cost = np.array([[np.inf, 0.1], [np.nan, np.inf]])
    result = linear_assignment(cost, max_cost=1.0)
    assert result.matches.tolist() == [[0, 1]]
    assert result.unmatched_rows.tolist() == [1]


def test_callers_matrix_is_not_modified():
    cost = np.array([[0.1, 0.7, np.inf], [0.6, 0.2, 0.99]])
    before = cost.copy()
    linear_assignment(cost, max_cost=0.8)
    np.testing.assert_array_equal(cost, before)


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (3, 0)])
def test_empty_matrices(shape):
    result = linear_assignment(np.zeros(shape), max_cost=0.5)
    assert result.matches.shape == (0, 2)
    assert result.unmatched_rows.tolist() == list(range(shape[0]))
    assert result.unmatched_cols.tolist() == list(range(shape[1]))


def test_rectangular_matrix_matches_best_columns():
    cost = np.array([[0.9, 0.1, 0.5, 0.7]])
    result = linear_assignment(cost, max_cost=0.8)
    assert result.matches.tolist() == [[0, 1]]
    assert result.unmatched_cols.tolist() == [0, 2, 3]


def test_rejects_non_2d_cost():
    with pytest.raises(ValueError):
        linear_assignment(np.zeros(3), max_cost=0.5)

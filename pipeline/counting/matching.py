"""Optimal one-to-one assignment with a cost limit (box overlap: ``pipeline.boxes``).

Inputs are never written to: the tracker reuses its cost matrices across stages,
and an assignment routine that scribbles on them (as supervision's does) makes
later stages depend on earlier ones by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

# Leaving a row and a column unmatched costs a hair more than ``max_cost``, so a
# pair at exactly the limit is still matched rather than left to a tie.
_LIMIT_SLACK = 1e-9


@dataclass(frozen=True)
class Assignment:
    """Result of ``linear_assignment``: matched ``(row, col)`` pairs and the leftovers.

    ``matches`` is ``(K, 2)`` int64 sorted by row; the unmatched index arrays are sorted.
    """

    matches: np.ndarray
    unmatched_rows: np.ndarray
    unmatched_cols: np.ndarray


def linear_assignment(cost: np.ndarray, max_cost: float) -> Assignment:
    """Minimum-cost one-to-one matching that only pairs entries with ``cost <= max_cost``.

    Solved exactly (not greedily) on the matrix extended with "unmatched" slots, as
    lapjv's ``cost_limit`` does: leaving a row and a column both unmatched costs
    ``max_cost``, so a pair is matched only when that is cheaper overall. Non-finite
    entries are never matched. Deterministic for equal inputs.
    """
    cost = np.asarray(cost, np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {cost.shape}")
    n_rows, n_cols = cost.shape
    feasible = np.isfinite(cost) & (cost <= max_cost)
    if not feasible.any():
        return _unmatched(n_rows, n_cols)
    unmatched_cost = (max_cost + _LIMIT_SLACK) / 2.0
    blocked = np.max(np.abs(cost[feasible])) + abs(max_cost) + 1.0
    size = n_rows + n_cols
    extended = np.zeros((size, size))
    extended[:n_rows, :n_cols] = np.where(feasible, cost, blocked)
    extended[:n_rows, n_cols:] = unmatched_cost
    extended[n_rows:, :n_cols] = unmatched_cost
    rows, cols = linear_sum_assignment(extended)
    real = (rows < n_rows) & (cols < n_cols)
    rows, cols = rows[real], cols[real]
    keep = feasible[rows, cols]
    matches = np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)
    return Assignment(
        matches=matches,
        unmatched_rows=_others(n_rows, matches[:, 0]),
        unmatched_cols=_others(n_cols, matches[:, 1]),
    )


def _others(n: int, taken: np.ndarray) -> np.ndarray:
    """Sorted indices ``0..n-1`` not in ``taken`` (a mask: ``setdiff1d`` costs more on these sizes)."""
    free = np.ones(n, bool)
    free[taken] = False
    return np.flatnonzero(free).astype(np.int64)


def _unmatched(n_rows: int, n_cols: int) -> Assignment:
    return Assignment(
        matches=np.zeros((0, 2), np.int64),
        unmatched_rows=np.arange(n_rows, dtype=np.int64),
        unmatched_cols=np.arange(n_cols, dtype=np.int64),
    )

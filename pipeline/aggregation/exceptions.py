"""Errors of the aggregation package, under the one camcount hierarchy."""

from __future__ import annotations

from pipeline.exceptions import CamcountError


class AggregationStateError(CamcountError):
    """A window state record from the changelog cannot be used (other version, wrong kind).

    Raised instead of starting empty, because empty state would re-emit every open window
    with version 1, below the versions already in the warehouse.
    """

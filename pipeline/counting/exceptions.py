"""Errors of the counting package, under the one camcount hierarchy."""

from __future__ import annotations

from pipeline.exceptions import CamcountError


class CountingStateError(CamcountError):
    """A saved counter or tracker state cannot be restored (wrong version, shape or type).

    Raised instead of guessing, because a half-restored tracker would silently
    re-count every object in view.
    """

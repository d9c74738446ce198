"""Errors of the model lifecycle."""

from __future__ import annotations

from pipeline.exceptions import CamcountError


class AssignmentError(CamcountError):
    """A change that makes no sense for the current assignment (e.g. rollback with no history)."""

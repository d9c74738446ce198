"""The serving endpoint follows the stream's model assignment (``model-control``).

A request that names no version gets the current primary, so ``camcount models promote``
and ``rollback`` apply to the HTTP endpoint exactly as to the inference workers.
"""

from __future__ import annotations

import logging

from pipeline.config import Settings
from pipeline.shadow.assignment import Assignment, parse_model_key
from pipeline.shadow.control import ControlFollower

log = logging.getLogger(__name__)


class AssignmentResolver:
    """``ModelResolver`` whose default version is the primary in ``model-control``, live."""

    def __init__(self, settings: Settings) -> None:
        self._primary = parse_model_key(settings.models.primary)
        self._follower = ControlFollower(settings, self._on_change)

    def start(self, wait_s: float = 10.0) -> "AssignmentResolver":
        self._follower.start(wait_s)
        return self

    def stop(self) -> None:
        self._follower.stop()

    def _on_change(self, assignment: Assignment) -> None:
        primary = parse_model_key(assignment.primary)
        if primary != self._primary:
            log.info("serving: primary is now %s:%s", *primary)
        self._primary = primary  # one tuple assignment: request threads see old or new, never half

    def default_version(self, name: str) -> str | None:
        primary_name, version = self._primary
        return version if name == primary_name else None

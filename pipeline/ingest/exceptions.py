"""Errors of the ingest package."""

from __future__ import annotations

from pipeline.exceptions import CamcountError


class SourceError(CamcountError):
    """A source cannot be opened or read (missing file, no video track, unreachable URL)."""


class ProducerFatalError(CamcountError):
    """The Kafka producer hit a fatal error (e.g. idempotence lost); the worker must stop."""

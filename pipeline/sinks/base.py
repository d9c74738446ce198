"""What a sink is, apart from any one database (quix-streams' ``BatchingSink`` shape).

A sink buffers decoded records per Kafka partition (``add``) and writes them out in
batches (``flush``). The consumer loop that drives it stores a partition's offsets for
commit only after ``flush`` returned for it, so a crash replays and never loses. A sink
whose destination is unavailable raises ``SinkBackpressureError``: the loop pauses the
partitions, keeps the buffer, and calls ``flush`` again after ``retry_after_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.exceptions import CamcountError

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class SinkRecord:
    """One decoded Kafka message for a sink: its Avro record name and value, and where it came from."""

    topic: str
    partition: int
    offset: int
    record: str
    value: dict[str, Any]


class SinkBackpressureError(CamcountError):
    """The destination cannot take the batch now; try the same flush again later."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Sink(Protocol):
    """A batching writer driven by a consumer loop.

    The loop remembers how far it consumed each partition; after a ``flush`` that
    returned, everything consumed before it is written (or was skipped), so the loop
    stores those offsets for commit.
    """

    def accepts(self, record: str) -> bool:
        """True when this sink writes records named ``record`` (the loop skips others)."""

    def add(self, item: SinkRecord) -> None:
        """Buffer one record (no I/O)."""

    def buffered_rows(self) -> int:
        """Rows waiting for the next flush, over all partitions."""

    def flush(self) -> int:
        """Write everything buffered; returns the rows written.

        Raises ``SinkBackpressureError``, keeping the rows not yet written, when the
        destination is unavailable.
        """

    def drop(self, partitions: list[TopicPartition]) -> int:
        """Forget the rows buffered for partitions this consumer no longer owns; returns how many."""

    def close(self) -> None:
        """Release connections; called once, when the loop stops."""

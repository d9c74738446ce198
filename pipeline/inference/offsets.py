"""Which input offsets may be committed: per partition, the contiguous prefix of finished ones.

A frame is finished when the broker has acknowledged its detections (or its dead-letter
copy), or when a policy skipped it. Frames finish out of order (a DLQ'd frame is acked
before the batch before it), so a partition's commit position only moves past offset ``o``
once ``o`` and every offset polled before it are finished: a crash then replays, never
loses. Offsets are tracked as polled, not as ``o + 1`` arithmetic, because a partition's
offsets may have gaps (compaction, transaction markers).

Pure bookkeeping behind one lock; no Kafka here.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

TopicPartition = tuple[str, int]


class Token(NamedTuple):
    """Identifies one polled message for ``done``; ``epoch`` ties it to one assignment."""

    topic: str
    partition: int
    epoch: int
    offset: int


@dataclass
class _Partition:
    epoch: int
    order: deque[int] = field(default_factory=deque)  # polled offsets, oldest first
    finished: set[int] = field(default_factory=set)
    position: int | None = None  # next offset to consume, once something finished


class OffsetTracker:
    """Per-partition contiguous finished offsets, safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._dirty: set[TopicPartition] = set()
        self._epochs = itertools.count()

    def add(self, topic: str, partition: int, offset: int) -> Token:
        """Register a polled offset; offsets of one partition must come in increasing order."""
        with self._lock:
            state = self._partitions.get((topic, partition))
            if state is None:
                state = self._partitions[(topic, partition)] = _Partition(next(self._epochs))
            if state.order and offset <= state.order[-1]:
                raise ValueError(f"{topic}[{partition}]: offset {offset} after {state.order[-1]}")
            state.order.append(offset)
            return Token(topic, partition, state.epoch, offset)

    def done(self, token: Token) -> bool:
        """Mark a message finished. False (ignored) if its partition was forgotten since."""
        with self._lock:
            state = self._partitions.get((token.topic, token.partition))
            if state is None or state.epoch != token.epoch:
                return False
            state.finished.add(token.offset)
            advanced = False
            while state.order and state.order[0] in state.finished:
                offset = state.order.popleft()
                state.finished.discard(offset)
                state.position = offset + 1
                advanced = True
            if advanced:
                self._dirty.add((token.topic, token.partition))
            return True

    def take_committable(self) -> dict[TopicPartition, int]:
        """Commit positions (next offset to read) that moved since the last call."""
        with self._lock:
            out = {}
            for tp in self._dirty:
                state = self._partitions.get(tp)
                if state is not None and state.position is not None:
                    out[tp] = state.position
            self._dirty.clear()
            return out

    def position(self, topic: str, partition: int) -> int | None:
        with self._lock:
            state = self._partitions.get((topic, partition))
            return None if state is None else state.position

    def pending(self, partitions: Iterable[TopicPartition] | None = None) -> int:
        """Registered but unfinished messages, in ``partitions`` (default: all)."""
        with self._lock:
            keys = self._partitions.keys() if partitions is None else partitions
            return sum(len(self._partitions[k].order) for k in keys if k in self._partitions)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop partitions (revoked or lost): later ``done`` calls for them are ignored."""
        with self._lock:
            for tp in partitions:
                self._partitions.pop(tp, None)
                self._dirty.discard(tp)

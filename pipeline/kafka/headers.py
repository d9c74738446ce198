"""Kafka header helpers: reading one header, and the DLQ reason headers."""

from __future__ import annotations

from typing import Sequence

Headers = Sequence[tuple[str, bytes | None]] | None


def header(headers: Headers, key: str) -> str | None:
    """The last value of ``key`` decoded as UTF-8, or None."""
    value = None
    for k, v in headers or ():
        if k == key and v is not None:
            value = v.decode("utf-8", "replace")
    return value


def dlq_headers(headers: Headers, source_topic: str, partition: int, offset: int, reason: str,
                error: str) -> list[tuple[str, bytes]]:
    """The original headers plus where the message came from and why it was rejected."""
    out = [(k, v) for k, v in (headers or ()) if not k.startswith("dlq.") and v is not None]
    out += [
        ("dlq.reason", reason.encode()),
        ("dlq.error", error[:1000].encode("utf-8", "replace")),
        ("dlq.topic", source_topic.encode()),
        ("dlq.partition", str(partition).encode()),
        ("dlq.offset", str(offset).encode()),
    ]
    return out

"""Avro single-object encoding of every Kafka value (the Avro spec's C3 01 + fingerprint + body).

The reader finds the writer schema by its CRC-64-AVRO fingerprint and resolves it against
its own (current) schema of the same name, so producers can add a field with a default
without stopping consumers. An unknown fingerprint or a corrupt body raises a typed
``DecodeError`` so that the caller can route the message to the dead-letter topic.
"""

from __future__ import annotations

import copy
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.exceptions import DecodeError, UnknownSchemaError

MAGIC = b"\xc3\x01"
HEADER_BYTES = len(MAGIC) + 8
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


def _strip_logical_types(node: Any) -> Any:
    """Drop ``logicalType`` so reads give epoch-ms ints, not datetimes (hot path, no conversions).

    The fingerprint is unaffected: the Parsing Canonical Form excludes logicalType.
    """
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


@dataclass(frozen=True)
class _Schema:
    name: str
    fingerprint: bytes
    parsed: Any


def schema_fingerprint(schema: Mapping[str, Any]) -> bytes:
    """The 8 fingerprint bytes as they appear on the wire (little-endian CRC-64-AVRO)."""
    parsed = fastavro.parse_schema(copy.deepcopy(dict(schema)), _write_hint=False)
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


class Codec:
    """Encodes with the current schema of a record; decodes any known writer version."""

    def __init__(self, current: Iterable[Mapping[str, Any]], history: Iterable[Mapping[str, Any]] = ()) -> None:
        self._current: dict[str, _Schema] = {}
        self._by_fingerprint: dict[bytes, _Schema] = {}
        for schema in current:
            entry = self._register(schema)
            if entry.name in self._current:
                raise ValueError(f"two current schemas named {entry.name}")
            self._current[entry.name] = entry
        for schema in history:
            self._register(schema)

    def _register(self, schema: Mapping[str, Any]) -> _Schema:
        plain = _strip_logical_types(copy.deepcopy(dict(schema)))
        parsed = fastavro.parse_schema(plain, _write_hint=False)
        entry = _Schema(name=parsed["name"], fingerprint=schema_fingerprint(schema), parsed=parsed)
        self._by_fingerprint[entry.fingerprint] = entry
        return entry

    @classmethod
    def from_dir(cls, path: Path = SCHEMAS_DIR) -> "Codec":
        """Current schemas are ``path/*.avsc``; older versions still readable live in ``path/history/``."""
        load = lambda files: [json.loads(f.read_text()) for f in sorted(files)]  # noqa: E731
        return cls(load(path.glob("*.avsc")), load((path / "history").glob("*.avsc")))

    @property
    def record_names(self) -> list[str]:
        return sorted(self._current)

    def encode(self, record: str, value: Mapping[str, Any]) -> bytes:
        """Encode ``value`` with the current schema named ``record`` (``camcount.Frame``)."""
        try:
            schema = self._current[record]
        except KeyError:
            raise KeyError(f"no current schema named {record!r}; known: {self.record_names}") from None
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(schema.fingerprint)
        fastavro.schemaless_writer(buf, schema.parsed, value)
        return buf.getvalue()

    def decode(self, data: bytes, expect: str | Iterable[str] | None = None) -> tuple[str, dict[str, Any]]:
        """Decode a single-object-encoded value into ``(record name, dict)``.

        ``expect`` restricts the record names this topic may carry; anything else is a
        ``DecodeError`` (a producer writing the wrong record to a topic is a broken contract).
        """
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < HEADER_BYTES:
            raise DecodeError("message shorter than the single-object header", reason="corrupt")
        data = bytes(data)
        if data[:2] != MAGIC:
            raise DecodeError(f"no Avro single-object marker (got {data[:2].hex()})", reason="corrupt")
        writer = self._by_fingerprint.get(data[2:HEADER_BYTES])
        if writer is None:
            raise UnknownSchemaError(f"unknown writer schema fingerprint {data[2:HEADER_BYTES].hex()}")
        allowed = {expect} if isinstance(expect, str) else set(expect or ())
        if allowed and writer.name not in allowed:
            raise DecodeError(f"got a {writer.name}, expected {' or '.join(sorted(allowed))}", reason="wrong_record")
        reader = self._current.get(writer.name, writer)
        buf = io.BytesIO(data)
        buf.seek(HEADER_BYTES)
        try:
            value = fastavro.schemaless_reader(buf, writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro raises many types on corrupt input; all mean the same here
            raise DecodeError(f"corrupt {writer.name} body: {type(exc).__name__}: {exc}", reason="corrupt") from None
        if buf.tell() != len(data):
            raise DecodeError(
                f"corrupt {writer.name} body: {len(data) - buf.tell()} trailing bytes", reason="corrupt"
            )
        return writer.name, value

    def decode_as(self, data: bytes, record: str) -> dict[str, Any]:
        """Decode a value that must be a ``record``."""
        return self.decode(data, expect=record)[1]


@lru_cache(maxsize=1)
def default_codec() -> Codec:
    """The codec over the schemas shipped in ``schemas/`` (loaded once per process)."""
    return Codec.from_dir()


# Record names, so callers don't spell them by hand.
FRAME = "camcount.Frame"
DETECTIONS = "camcount.Detections"
COUNT_EVENT = "camcount.CountEvent"
OCCUPANCY_SAMPLE = "camcount.OccupancySample"
WINDOW_COUNT = "camcount.WindowCount"
WINDOW_OCCUPANCY = "camcount.WindowOccupancy"
HEARTBEAT = "camcount.Heartbeat"
ALERT = "camcount.Alert"
MODEL_COMPARISON = "camcount.ModelComparison"

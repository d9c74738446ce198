"""Factories for count-events records and a driver that feeds them through an aggregator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from pipeline.aggregation.aggregator import Result, WindowAggregator, WindowSpec
from pipeline.codec import COUNT_EVENT, HEARTBEAT, OCCUPANCY_SAMPLE

SPEC = WindowSpec(window_ms=60_000, allowed_lateness_ms=30_000)

Rec = tuple[str, dict[str, Any]]


def event(ts_ms: int, event_id: str, camera: str = "cam1", rule: str = "door", class_name: str = "person",
          direction: str = "in") -> Rec:
    """A CountEvent (only the fields the aggregator reads matter)."""
    return COUNT_EVENT, {
        "event_id": event_id, "camera_id": camera, "stream_id": "s1", "seq": 0, "capture_ts_ms": ts_ms,
        "rule": rule, "rule_kind": "line", "class_name": class_name, "direction": direction,
        "track_id": 0, "dwell_ms": None, "model_name": "m", "model_version": "1",
    }


def sample(ts_ms: int, seq: int, occupancy: int, camera: str = "cam1", stream_id: str = "s1",
           rule: str = "lobby", class_name: str = "person") -> Rec:
    return OCCUPANCY_SAMPLE, {"camera_id": camera, "stream_id": stream_id, "seq": seq, "capture_ts_ms": ts_ms,
                              "rule": rule, "class_name": class_name, "occupancy": occupancy}


def beat(ts_ms: int, camera: str = "cam1", end_of_stream: bool = False) -> Rec:
    return HEARTBEAT, {"camera_id": camera, "stream_id": "s1", "seq": 0, "capture_ts_ms": ts_ms,
                       "end_of_stream": end_of_stream}


class Driver:
    """Feeds records to an aggregator whose store is JSON round-tripped after every record,
    as the faust changelog would, so any state that is not plain JSON fails the tests."""

    def __init__(self, spec: WindowSpec = SPEC, store: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.store: dict[str, Any] = store if store is not None else {}
        self.results: list[Result] = []

    def feed(self, records: Iterable[Rec], partition: int = 0) -> list[dict[str, Any]]:
        """Apply records; returns the emitted window values, in order."""
        out = []
        for name, value in records:
            aggregator = WindowAggregator(self.spec, self.store)
            result = aggregator.apply(partition, name, value)
            for key, record in aggregator.take_writes().items():
                if record is None:
                    self.store.pop(key, None)
                else:
                    self.store[key] = record
            self.store = json.loads(json.dumps(self.store))
            self.results.append(result)
            out += [e.value for e in result.emissions]
        return out

    def window_keys(self) -> list[str]:
        return sorted(k for k in self.store if not k.startswith('["partition"'))


@pytest.fixture
def driver() -> Callable[..., Driver]:
    return Driver

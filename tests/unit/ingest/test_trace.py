from __future__ import annotations

import pytest

from pipeline.ingest.trace import new_traceparent, parse_traceparent


def test_new_traceparents_are_valid_sampled_and_distinct():
    values = [new_traceparent() for _ in range(1000)]
    parsed = [parse_traceparent(v) for v in values]
    assert all(p is not None and p[2] == 1 for p in parsed)
    assert len({p[0] for p in parsed}) == 1000 and len({p[1] for p in parsed}) == 1000


@pytest.mark.parametrize(
    "value",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # unknown version
    ],
)
def test_invalid_traceparents_are_rejected(value):
    assert parse_traceparent(value) is None


def test_the_specs_example_parses():
    assert parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)

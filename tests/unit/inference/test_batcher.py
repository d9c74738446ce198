"""Micro-batch boundaries (pure core) and the thin blocking wrapper."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.inference.batcher import BlockingBatcher, MicroBatcher

# Each step: ("add", item, now_ms) or ("ready", now_ms, expected batch or None).
CASES = [
    pytest.param(
        3, 10,
        [("add", "a", 0), ("add", "b", 1), ("ready", 1, None), ("add", "c", 2),
         ("ready", 2, ["a", "b", "c"])],
        id="closes-at-max-batch-before-the-deadline",
    ),
    pytest.param(
        3, 10,
        [("add", "a", 0), ("ready", 9, None), ("ready", 10, ["a"])],
        id="closes-exactly-at-first-item-plus-max-wait",
    ),
    pytest.param(
        3, 10,
        [("add", "a", 0), ("add", "b", 8), ("ready", 10, ["a", "b"])],
        id="deadline-counts-from-the-first-item-not-the-last",
    ),
    pytest.param(
        2, 10,
        [("add", "a", 0), ("add", "b", 0), ("add", "c", 0), ("add", "d", 5),
         ("add", "e", 6), ("ready", 6, ["a", "b"]), ("ready", 6, ["c", "d"]),
         ("ready", 6, None), ("ready", 16, ["e"])],
        id="backlog-splits-into-full-batches-then-waits-on-the-next-first-item",
    ),
    pytest.param(
        2, 10,
        [("add", "a", 0), ("add", "b", 3), ("add", "c", 4), ("ready", 20, ["a", "b"]),
         ("ready", 20, ["c"])],
        id="overdue-backlog-comes-out-at-once",
    ),
    pytest.param(
        4, 0,
        [("ready", 0, None), ("add", "a", 5), ("ready", 5, ["a"])],
        id="zero-wait-sends-whatever-is-pending",
    ),
    pytest.param(
        1, 100,
        [("add", "a", 0), ("ready", 0, ["a"]), ("ready", 1000, None)],
        id="batch-of-one-never-waits",
    ),
]


@pytest.mark.parametrize("max_batch, max_wait_ms, steps", CASES)
def test_batch_boundaries(max_batch, max_wait_ms, steps):
    batcher: MicroBatcher[str] = MicroBatcher(max_batch, max_wait_ms)
    for op, *args in steps:
        if op == "add":
            batcher.add(args[0], args[1])
        else:
            assert batcher.ready(args[0]) == args[1], (op, *args)


def test_deadline_follows_the_oldest_pending_item():
    batcher: MicroBatcher[str] = MicroBatcher(2, 10)
    assert batcher.deadline_ms() is None
    for item, now in (("a", 0), ("b", 4), ("c", 7)):
        batcher.add(item, now)
    assert batcher.deadline_ms() == 10
    batcher.ready(4)
    assert batcher.deadline_ms() == 17 and len(batcher) == 1


def test_flush_takes_pending_items_regardless_of_time():
    batcher: MicroBatcher[int] = MicroBatcher(2, 1000)
    for i in range(3):
        batcher.add(i, 0)
    assert batcher.flush() == [0, 1]
    assert batcher.flush() == [2]
    assert batcher.flush() == []


@pytest.mark.parametrize("max_batch, max_wait_ms", [(0, 10), (2, -1)])
def test_invalid_limits_are_refused(max_batch, max_wait_ms):
    with pytest.raises(ValueError):
        MicroBatcher(max_batch, max_wait_ms)


def test_blocking_get_returns_a_full_batch_without_waiting():
    batcher: BlockingBatcher[int] = BlockingBatcher(3, 60_000)
    for i in range(3):
        assert batcher.put(i)
    assert batcher.get_batch(timeout_s=5) == [0, 1, 2]


def test_blocking_get_waits_for_max_wait():
    batcher: BlockingBatcher[int] = BlockingBatcher(8, 50)
    batcher.put(1)
    start = time.monotonic()
    assert batcher.get_batch(timeout_s=5) == [1]
    assert 0.04 <= time.monotonic() - start < 2.0


def test_blocking_get_times_out_empty():
    batcher: BlockingBatcher[int] = BlockingBatcher(8, 50)
    assert batcher.get_batch(timeout_s=0.02) is None


def test_put_reports_full_so_the_caller_can_pause():
    batcher: BlockingBatcher[int] = BlockingBatcher(2, 1000, max_pending=2)
    assert batcher.put(1, timeout_s=0) and batcher.put(2, timeout_s=0)
    assert batcher.put(3, timeout_s=0) is False
    assert batcher.get_batch(timeout_s=1) == [1, 2]
    assert batcher.put(3, timeout_s=0)


def test_producer_and_consumer_threads_lose_nothing():
    batcher: BlockingBatcher[int] = BlockingBatcher(4, 5, max_pending=8)
    received: list[int] = []

    def consume() -> None:
        while (batch := batcher.get_batch(timeout_s=5)) is not None:
            assert 1 <= len(batch) <= 4
            received.extend(batch)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(200):
        assert batcher.put(i, timeout_s=5)
    batcher.close()
    consumer.join(timeout=10)
    assert received == list(range(200))


def test_close_drains_then_refuses():
    batcher: BlockingBatcher[int] = BlockingBatcher(4, 60_000)
    batcher.put(1)
    batcher.close()
    assert batcher.put(2) is False
    assert batcher.get_batch(timeout_s=1) == [1]
    assert batcher.get_batch(timeout_s=1) is None

from __future__ import annotations

import queue
import threading
import time

import pytest

from pipeline.ingest.framequeue import FrameQueue


def make(*cameras: tuple[str, int, str]) -> FrameQueue[str]:
    q: FrameQueue[str] = FrameQueue()
    for camera_id, capacity, when_full in cameras:
        q.add_camera(camera_id, capacity, when_full)
    return q


def test_fifo_per_camera_and_cameras_taken_in_turn():
    q = make(("a", 10, "block"), ("b", 10, "block"))
    for item in ("a1", "a2", "a3"):
        q.put("a", item)
    q.put("b", "b1")
    assert [q.get(0) for _ in range(5)] == ["a1", "b1", "a2", "a3", None]


def test_block_raises_full_after_the_timeout_and_keeps_what_it_had():
    q = make(("a", 2, "block"))
    q.put("a", "1")
    q.put("a", "2")
    started = time.monotonic()
    with pytest.raises(queue.Full):
        q.put("a", "3", timeout_s=0.2)
    assert time.monotonic() - started >= 0.19
    assert [q.get(0), q.get(0), q.get(0)] == ["1", "2", None]


def test_a_blocked_reader_resumes_when_the_producer_takes_a_frame():
    q = make(("a", 1, "block"))
    q.put("a", "1")
    done = threading.Event()

    def reader() -> None:
        q.put("a", "2")  # blocks: the queue is full
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    assert not done.wait(0.2)  # still blocked: backpressure
    assert q.get(1) == "1"
    assert done.wait(2)
    assert q.get(1) == "2"


def test_drop_oldest_makes_room_and_hands_back_what_it_dropped():
    q = make(("a", 2, "drop_oldest"), ("b", 2, "block"))
    assert q.put("a", "1") is None
    assert q.put("a", "2") is None
    assert q.put("a", "3") == "1"
    assert q.put("a", "4") == "2"
    assert q.depth("a") == 2
    assert [q.get(0), q.get(0)] == ["3", "4"]


def test_finished_once_every_camera_closed_and_drained():
    q = make(("a", 2, "block"), ("b", 2, "block"))
    q.put("a", "1")
    q.close("a")
    q.close("b")
    assert not q.finished()  # "1" still waits
    assert q.get(0) == "1"
    assert q.finished()
    with pytest.raises(ValueError):
        q.put("a", "2")


def test_get_waits_for_a_put_from_another_thread():
    q = make(("a", 2, "block"))
    threading.Timer(0.1, q.put, args=("a", "late")).start()
    assert q.get(2) == "late"


@pytest.mark.parametrize(
    ("camera_id", "capacity"),
    [
        ("a", 0),  # a queue that can hold nothing
        ("dup", 1),  # the same camera twice
    ],
)
def test_rejects_bad_cameras(camera_id, capacity):
    q = make(("dup", 1, "block"))
    with pytest.raises(ValueError):
        q.add_camera(camera_id, capacity)

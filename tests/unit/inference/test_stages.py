"""How the prepare stage splits a micro-batch between the detectors serving its cameras (pure)."""

from __future__ import annotations

from pipeline.inference.frames import FrameItem
from pipeline.inference.stages import split_by_detector


def item(camera: str, seq: int) -> FrameItem:
    return FrameItem(token=None, key=camera.encode(), headers=None, value=b"",
                     frame={"camera_id": camera, "seq": seq}, polled_ms=0)


PRIMARY, CANARY = object(), object()


def names(groups) -> list[tuple[object, list[str]]]:
    return [(detector, [f"{i.frame['camera_id']}{i.frame['seq']}" for i in items]) for detector, items in groups]


def test_one_sub_batch_per_detector_in_frame_order() -> None:
    items = [item("a", 1), item("b", 1), item("c", 1), item("a", 2), item("b", 2), item("c", 2)]
    groups = split_by_detector(items, {"a": PRIMARY, "b": CANARY, "c": PRIMARY}.__getitem__)
    assert names(groups) == [(PRIMARY, ["a1", "c1", "a2", "c2"]), (CANARY, ["b1", "b2"])]


def test_a_single_detector_keeps_the_batch_whole() -> None:
    items = [item("a", 1), item("b", 1), item("a", 2)]
    assert names(split_by_detector(items, lambda camera: PRIMARY)) == [(PRIMARY, ["a1", "b1", "a2"])]


def test_a_camera_stays_with_its_first_frames_detector_within_a_batch() -> None:
    """A swap while splitting (the canary loaded meanwhile) cannot run a camera's later frame
    in an earlier sub-batch than its first: each camera is looked up once."""
    answers = {"b": [CANARY], "a": [PRIMARY, CANARY]}  # "a" would move to the canary if asked again
    asked: list[str] = []

    def detector_for(camera: str) -> object:
        asked.append(camera)
        return answers[camera].pop(0)

    groups = split_by_detector([item("b", 1), item("a", 1), item("a", 2)], detector_for)
    assert names(groups) == [(CANARY, ["b1"]), (PRIMARY, ["a1", "a2"])] and asked == ["b", "a"]

"""The rules: which records make which checks, breached or not, and the Alert records they give."""

from __future__ import annotations

import pytest

from pipeline.alerts.config import CountRule, DisagreementRule, InferenceRule, OccupancyRule, SilenceRule
from pipeline.alerts.rules import (
    alert_value,
    count_checks,
    disagreement_checks,
    inference_checks,
    occupancy_checks,
    silence_checks,
)
from pipeline.alerts.state import advance
from pipeline.codec import ALERT, default_codec


def sample(occupancy: int, ts_ms: int = 0, camera: str = "cam-a", zone: str = "lobby", cls: str = "person") -> dict:
    return dict(camera_id=camera, stream_id=f"{camera}-s1", seq=ts_ms // 100, capture_ts_ms=ts_ms, rule=zone,
                class_name=cls, occupancy=occupancy)


def window(count: int, final: bool = True, camera: str = "cam-a", direction: str = "in") -> dict:
    return dict(camera_id=camera, rule="door", class_name="person", direction=direction, window_start_ms=0,
                window_end_ms=60_000, count=count, version=1, final=final)


OCC = OccupancyRule(name="crowd", camera_id="cam-a", zone="lobby", above=3, for_ms=2_000)


@pytest.mark.parametrize("rule, value, expected", [
    (OCC, sample(4), [True]),  # above
    (OCC, sample(3), [False]),  # equal is not above
    (OCC, sample(9, camera="cam-b"), []),  # other camera: not this rule's
    (OCC, sample(9, zone="hall"), []),  # other zone
    (OccupancyRule(name="any", above=0), sample(1, camera="cam-z", zone="z"), [True]),  # no filter: any
    (OccupancyRule(name="cars", above=0, class_name="car"), sample(5), []),  # class filter
])
def test_occupancy_checks(rule: OccupancyRule, value: dict, expected: list[bool]) -> None:
    checks = occupancy_checks([rule], value)
    assert [c.breached for c in checks] == expected
    assert all(c.hold_ms == rule.for_ms and c.kind == "threshold" for c in checks)


def test_occupancy_above_for_hold_then_below_fires_once_and_resolves_once() -> None:
    state, alerts = None, []
    for ts_ms, occupancy in [(0, 1), (1_000, 5), (2_000, 6), (3_000, 5), (4_000, 7), (5_000, 2), (6_000, 1)]:
        for check in occupancy_checks([OCC], sample(occupancy, ts_ms)):
            state, transition = advance(state, check.breached, check.ts_ms, check.hold_ms)
            if transition:
                alerts.append(alert_value(check, transition))
    assert [(a["state"], a["ts_ms"], a["value"]) for a in alerts] == [("firing", 3_000, 5.0), ("resolved", 5_000, 2.0)]
    assert alerts[0]["alert_id"] == alerts[1]["alert_id"] == "crowd/cam-a/lobby/person"
    assert alerts[0]["message"] == "crowd: occupancy of lobby/person on cam-a is 5, > 3 for 2 s"


@pytest.mark.parametrize("rule, value, expected", [
    (CountRule(name="busy", above=10), window(11), [("above", True)]),
    (CountRule(name="busy", above=10), window(10), [("above", False)]),
    (CountRule(name="quiet", below=5), window(4), [("below", True)]),
    (CountRule(name="band", above=10, below=5), window(7), [("above", False), ("below", False)]),
    # provisional windows are skipped unless final_only is off
    (CountRule(name="busy", above=10), window(50, final=False), []),
    (CountRule(name="busy", above=10, final_only=False), window(50, final=False), [("above", True)]),
    (CountRule(name="busy", above=10, direction="out"), window(50), []),  # direction filter
])
def test_count_checks(rule: CountRule, value: dict, expected: list[tuple[str, bool]]) -> None:
    checks = count_checks([rule], value)
    assert [(c.alert_id.rsplit("/", 1)[1], c.breached) for c in checks] == expected
    assert all(c.ts_ms == value["window_end_ms"] for c in checks)


SILENT = SilenceRule(name="down", silent_for_ms=10_000, cameras=["cam-cfg"])


@pytest.mark.parametrize("last_seen, now_ms, start_ms, expected", [
    # heard 5 s ago: fine; never-heard configured camera within its first 10 s: fine
    ({"cam-a": 95_000}, 100_000, 91_000, [("cam-a", False), ("cam-cfg", False)]),
    # heard 11 s ago: silent; configured camera 11 s after start: silent
    ({"cam-a": 89_000}, 100_000, 89_000, [("cam-a", True), ("cam-cfg", True)]),
    # silent for long before the alerter started: only counted from the start (no alert storm on restart)
    ({"cam-a": 0}, 100_000, 95_000, [("cam-a", False), ("cam-cfg", False)]),
    # ended its stream on purpose: not watched
    ({"cam-a": None, "cam-cfg": None}, 100_000, 0, []),
])
def test_silence_checks(last_seen: dict, now_ms: int, start_ms: int, expected: list) -> None:
    checks = silence_checks([SILENT], last_seen, now_ms, start_ms)
    assert [(c.camera_id, c.breached) for c in checks] == expected
    assert all(c.kind == "silence" and c.ts_ms == now_ms for c in checks)


def stats(frames: int, errors: int, p95: float, model: str = "yolox-nano", version: str = "1") -> dict:
    return dict(model_name=model, model_version=version, frames=frames, errors=errors, inference_ms_p95=p95)


@pytest.mark.parametrize("rule, rows, expected", [
    (InferenceRule(name="r", max_error_rate=0.1), [stats(90, 10, 5)], [("inference_errors", False)]),  # 10 %
    (InferenceRule(name="r", max_error_rate=0.1), [stats(80, 20, 5)], [("inference_errors", True)]),
    (InferenceRule(name="r", max_latency_p95_ms=50), [stats(10, 0, 51)], [("inference_latency", True)]),
    # no frames at all: not judged (no data is not "fine" and not "broken")
    (InferenceRule(name="r", max_error_rate=0.1, max_latency_p95_ms=50), [stats(0, 0, 0)], []),
    # all frames failed: error rate 1, latency not judged
    (InferenceRule(name="r", max_error_rate=0.1, max_latency_p95_ms=50), [stats(0, 5, 0)],
     [("inference_errors", True)]),
    (InferenceRule(name="r", model="other", max_error_rate=0.1), [stats(0, 5, 0)], []),  # other model
    (InferenceRule(name="r", model="yolox-nano:1", max_error_rate=0.1), [stats(0, 5, 0)], [("inference_errors", True)]),
])
def test_inference_checks(rule: InferenceRule, rows: list[dict], expected: list) -> None:
    assert [(c.kind, c.breached) for c in inference_checks([rule], rows, 1_000)] == expected


def comparison(precision: float, recall: float, count_diff: int, frames: int = 100) -> dict:
    return dict(camera_id="cam-a", window_start_ms=0, window_end_ms=60_000, primary_model="p", primary_version="1",
                candidate_model="c", candidate_version="2", frames_compared=frames,
                classes=[dict(class_name="person", matched=9, candidate_boxes=10, primary_boxes=10, precision=0.9,
                              recall=0.9),
                         dict(class_name="car", matched=1, candidate_boxes=1, primary_boxes=1, precision=precision,
                              recall=recall)],
                count_diff=count_diff, primary_latency_p50_ms=1.0, primary_latency_p95_ms=2.0,
                candidate_latency_p50_ms=1.0, candidate_latency_p95_ms=2.0)


@pytest.mark.parametrize("rule, value, expected", [
    # the worst class decides
    (DisagreementRule(name="d", min_precision=0.8), comparison(0.5, 1.0, 0), [("precision", 0.5, True)]),
    (DisagreementRule(name="d", min_recall=0.8), comparison(1.0, 0.85, 0), [("recall", 0.85, False)]),
    # |count_diff|, either sign
    (DisagreementRule(name="d", max_count_diff=3), comparison(1, 1, -4), [("count_diff", 4.0, True)]),
    # too few frames compared: skipped
    (DisagreementRule(name="d", max_count_diff=3, min_frames_compared=200), comparison(1, 1, -4), []),
    (DisagreementRule(name="d", candidate="x", max_count_diff=3), comparison(1, 1, -4), []),  # other candidate
])
def test_disagreement_checks(rule: DisagreementRule, value: dict, expected: list) -> None:
    checks = disagreement_checks([rule], value)
    assert [(c.alert_id.rsplit("/", 1)[1], c.value, c.breached) for c in checks] == expected
    assert all(c.alert_id.startswith("d/cam-a/c:2/") for c in checks)


def test_alert_values_encode_as_alert_records() -> None:
    codec = default_codec()
    for check in [*occupancy_checks([OCC], sample(4)), *silence_checks([SILENT], {}, 20_000, 0),
                  *inference_checks([InferenceRule(name="r", max_error_rate=0.1)], [stats(1, 1, 1)], 5)]:
        for transition in ("firing", "resolved"):
            value = alert_value(check, transition)
            assert codec.decode_as(codec.encode(ALERT, value), ALERT) == value

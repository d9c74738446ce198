from __future__ import annotations

import av
import pytest

from pipeline.ingest.sampler import FrameSampler


def kept(times: list[float], fps: float, **kw) -> list[int]:
    sampler = FrameSampler(fps, **kw)
    return [i for i, t in enumerate(times) if sampler.offer(t)]


def steady(fps: float, n: int, round_to_s: float | None = None) -> list[float]:
    times = [i / fps for i in range(n)]
    return [round(t / round_to_s) * round_to_s for t in times] if round_to_s else times


@pytest.mark.parametrize(
    ("times", "target_fps", "expected"),
    [
        (steady(25, 50), 5, list(range(0, 50, 5))),  # 25 -> 5 fps: every 5th frame
        (steady(10, 795), 5, list(range(0, 795, 2))),  # pets09: 795 frames at 10 fps -> 398
        (steady(24, 48, round_to_s=0.001), 12, list(range(0, 48, 2))),  # ms-rounded 24 fps -> every 2nd
        (steady(7, 21), 10, list(range(21))),  # source slower than target: keep all, repeat none
        (steady(10, 30), 10, list(range(30))),  # same rate: every frame
        (steady(30, 30), 25, [i for i in range(30) if i % 6 != 2]),  # 30 -> 25: 5 of each 6
        (steady(29.97, 300), 10, list(range(0, 300, 3))),  # NTSC rate -> 10 fps, no drift
        (steady(250, 100), 5, list(range(0, 100, 50))),  # fast source: the frame on time, not the one before
        ([0.0, 0.03, 0.09, 0.1, 0.25, 0.26, 0.41, 0.62], 5, [0, 4, 6, 7]),  # variable frame rate
        ([0.0, 0.2, 0.2, 0.4], 5, [0, 1, 3]),  # a repeated timestamp is kept once
        ([0.0, 0.5, 0.3, 0.7], 5, [0, 1, 3]),  # a small step back is not a restart: 0.3 is skipped
    ],
)
def test_sampling_by_presentation_time(times, target_fps, expected):
    assert kept(times, target_fps) == expected


def test_count_follows_duration_and_target_fps():
    # 60 s of 25 fps video at 5 fps is 300 frames, at 2 fps 120, at 0.5 fps 30.
    times = steady(25, 25 * 60)
    assert [len(kept(times, fps)) for fps in (5, 2, 0.5)] == [300, 120, 30]


def test_a_gap_invents_nothing_and_the_next_frame_fills_in():
    # 24 fps with frame 10 lost: at 24 fps nothing stands in for it; at 12 fps frame 11
    # takes its turn, and the even frames are picked again right after.
    times = [i / 24 for i in range(30) if i != 10]
    assert len(kept(times, 24)) == 29
    picked = [round(times[i] * 24) for i in kept(times, 12)]
    assert picked == [0, 2, 4, 6, 8, 11, 12, 14, 16, 18, 20, 22, 24, 26, 28]


def test_jitter_around_the_target_rate_loses_nothing():
    # A 25 fps camera whose timestamps wander +-8 ms, sampled at 25 fps: every frame kept
    # (a fixed grid of slots drops frames whenever the jitter straddles a grid line).
    jitter = [0.0, 0.008, -0.008, 0.003, -0.005, 0.007, -0.002]
    times = [i / 25 + jitter[i % len(jitter)] for i in range(491)]
    assert len(kept(times, 25)) == 491


def test_street_clip_real_timestamps_with_its_dropped_frame(street_cars):
    with av.open(str(street_cars)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        time_base = stream.time_base
    times = [float((p - pts[0]) * time_base) for p in pts]
    gaps = [b - a for a, b in zip(times, times[1:])]
    lost_after = [i for i, gap in enumerate(gaps) if gap > 0.06]
    assert len(times) == 905 and lost_after == [17]  # as PROVENANCE.md says: one dropped frame
    # The clip runs at 24.04 fps on average: at 25 fps every frame is kept; at 24 fps the
    # one frame too many is left out and nothing is lost to the 41/42 ms timestamp jitter.
    assert len(kept(times, 25)) == 905
    assert len(kept(times, 24)) == int(times[-1] * 24 + 0.25) + 1 == 904
    at_12 = kept(times, 12)
    assert 18 in at_12  # the frame after the gap takes the lost frame's turn
    assert len(at_12) == int(times[-1] * 12 + 0.25) + 1 == 453
    # Every second frame, except where the gap and the 24.04 fps drift shift the phase.
    steps = [b - a for a, b in zip(at_12, at_12[1:])]
    assert set(steps) <= {1, 2, 3} and steps.count(2) >= len(steps) - 8


def test_restart_when_time_jumps_back():
    sampler = FrameSampler(5)
    # After a long gap the earned time is capped: one extra frame, then every 0.2 s again.
    offered = (0.0, 0.2, 0.4, 100.0, 100.1, 100.2, 100.3, 100.4)
    assert [sampler.offer(t) for t in offered] == [True] * 6 + [False, True]
    # Back 97 s: the camera's clock restarted, so sampling restarts instead of waiting ~97 s.
    assert [sampler.offer(t) for t in (3.0, 3.1, 3.2)] == [True, False, True]


def test_reset_starts_afresh():
    sampler = FrameSampler(5)
    assert [sampler.offer(t) for t in (0.0, 0.1, 0.2)] == [True, False, True]
    sampler.reset()
    assert [sampler.offer(t) for t in (0.25, 0.3, 0.45)] == [True, False, True]


@pytest.mark.parametrize(("fps", "max_early"), [(0, 0.1), (-5, 0.1), (5, 0.5), (5, -0.1)])
def test_rejects_bad_parameters(fps, max_early):
    with pytest.raises(ValueError):
        FrameSampler(fps, max_early=max_early)

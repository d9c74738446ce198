from __future__ import annotations

from pipeline.ingest.clock import FileClock, LiveClock


class FakeWall:
    """A wall clock the test moves by hand (ms)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def test_file_clock_is_start_plus_media_time_and_repeatable():
    times = [0.0, 0.1, 0.2, 0.333, 79.4]
    first = [FileClock(1_700_000_000_000).capture_ts_ms(t) for t in times]
    again = [FileClock(1_700_000_000_000).capture_ts_ms(t) for t in times]
    assert first == again == [1_700_000_000_000, 1_700_000_000_100, 1_700_000_000_200, 1_700_000_000_333,
                              1_700_000_079_400]


def test_file_clock_never_goes_back():
    clock = FileClock(1000)
    assert [clock.capture_ts_ms(t) for t in (0.5, 0.4, 0.6)] == [1500, 1500, 1600]


def test_live_clock_keeps_the_cameras_spacing_not_the_networks():
    wall = FakeWall(1_000_000)
    clock = LiveClock(max_skew_ms=2000, now_ms=wall)
    stamps = []
    for t_s, arrival_delay_ms in [(0.0, 0), (0.2, 35), (0.4, 5), (0.6, 80), (0.8, 10)]:
        wall.now_ms = 1_000_000 + round(t_s * 1000) + arrival_delay_ms
        stamps.append(clock.capture_ts_ms(t_s))
    assert stamps == [1_000_000, 1_000_200, 1_000_400, 1_000_600, 1_000_800]
    assert clock.resyncs == 0


def test_live_clock_reanchors_when_media_time_drifts_from_the_wall():
    wall = FakeWall(5_000_000)
    clock = LiveClock(max_skew_ms=2000, now_ms=wall)
    assert clock.capture_ts_ms(10.0) == 5_000_000
    wall.now_ms += 1000
    assert clock.capture_ts_ms(11.0) == 5_001_000
    # The camera's clock jumps 1 h ahead: the frame is stamped with the wall time instead.
    wall.now_ms += 1000
    assert clock.capture_ts_ms(3612.0) == 5_002_000
    assert clock.resyncs == 1
    wall.now_ms += 500
    assert clock.capture_ts_ms(3612.5) == 5_002_500


def test_live_clock_never_stamps_the_future_or_goes_back():
    wall = FakeWall(1_000)
    clock = LiveClock(max_skew_ms=5000, now_ms=wall)
    assert clock.capture_ts_ms(0.0) == 1_000
    wall.now_ms = 1_500
    assert clock.capture_ts_ms(1.0) == 1_500  # media says 2_000, but it is only 1_500 now
    wall.now_ms = 1_600
    assert clock.capture_ts_ms(0.2) == 1_500  # media went back: hold, don't go back

"""The window aggregator: emission policy, versions, lateness, duplicates, final, restarts."""

from __future__ import annotations

import pytest

from pipeline.aggregation.aggregator import WindowAggregator, WindowSpec
from pipeline.aggregation.exceptions import AggregationStateError
from pipeline.aggregation.state import count_key
from pipeline.codec import WINDOW_COUNT, WINDOW_OCCUPANCY

from .conftest import SPEC, Driver, beat, event, sample


def counts(emitted: list[dict]) -> list[tuple]:
    """(window start s, count, version, final) of WindowCount values."""
    return [(v["window_start_ms"] // 1000, v["count"], v["version"], v["final"]) for v in emitted]


def test_nothing_is_emitted_while_the_window_fills() -> None:
    d = Driver()
    assert d.feed([event(1_000, "a"), event(2_000, "b"), beat(59_999)]) == []


def test_first_emission_when_stream_time_reaches_the_end_then_final_after_lateness() -> None:
    d = Driver()
    d.feed([event(1_000, "a"), event(59_999, "b")])
    assert counts(d.feed([beat(60_000)])) == [(0, 2, 1, False)]
    assert d.feed([beat(89_999)]) == []  # within the lateness: still open
    assert counts(d.feed([beat(90_000)])) == [(0, 2, 2, True)]
    assert d.window_keys() == []  # the final window's state is gone


def test_emitted_record_is_a_full_window_count() -> None:
    d = Driver()
    emitted = d.feed([event(5_000, "a", camera="c9", rule="gate", class_name="car", direction="out"),
                      beat(60_000, camera="c9")])
    assert emitted == [{"camera_id": "c9", "rule": "gate", "class_name": "car", "direction": "out",
                        "window_start_ms": 0, "window_end_ms": 60_000, "count": 1, "version": 1,
                        "final": False}]
    assert d.results[-1].emissions[0].record == WINDOW_COUNT
    assert d.results[-1].emissions[0].key == "c9"


@pytest.mark.parametrize(
    "ts_ms, expected_start_s",
    [
        (0, 0),  # first ms of the window
        (59_999, 0),  # last ms of the window
        (60_000, 60),  # the end is the next window's start
    ],
)
def test_boundaries(ts_ms: int, expected_start_s: int) -> None:
    d = Driver()
    emitted = d.feed([event(ts_ms, "a"), beat(500_000)])
    assert counts(emitted) == [(expected_start_s, 1, 1, True)]


def test_late_event_within_lateness_re_emits_with_a_higher_version() -> None:
    d = Driver()
    d.feed([event(10_000, "a"), beat(60_000)])  # v1: count 1
    assert counts(d.feed([event(30_000, "late")])) == [(0, 2, 2, False)]  # at once, not at the next tick
    assert counts(d.feed([event(40_000, "later"), beat(89_999)])) == [(0, 3, 3, False)]
    assert counts(d.feed([beat(90_000)])) == [(0, 3, 4, True)]


def test_first_event_of_a_key_arriving_late_is_emitted_at_once() -> None:
    d = Driver()
    d.feed([event(10_000, "a", direction="in"), beat(70_000)])
    emitted = d.feed([event(20_000, "b", direction="out")])
    assert [(v["direction"], v["count"], v["version"]) for v in emitted] == [("out", 1, 1)]


@pytest.mark.parametrize(
    "late_ts_ms, stream_time_ms, outcome",
    [
        (30_000, 89_999, "accepted"),  # window [0, 60s) closes at 90s: still counts
        (30_000, 90_000, "too_late"),  # closed at exactly end + lateness
        (59_999, 90_000, "too_late"),  # any event of the closed window
        (60_000, 90_000, "accepted"),  # the next window is open
    ],
)
def test_lateness_limit(late_ts_ms: int, stream_time_ms: int, outcome: str) -> None:
    d = Driver()
    d.feed([event(1_000, "a"), beat(stream_time_ms)])
    d.feed([event(late_ts_ms, "late")])
    assert d.results[-1].outcome == outcome
    if outcome == "too_late":
        assert d.results[-1].emissions == ()
        assert d.results[-1].late_by_ms == stream_time_ms - late_ts_ms


def test_too_late_event_changes_nothing() -> None:
    d = Driver()
    d.feed([event(1_000, "a"), beat(90_000)])
    store_before = dict(d.store)
    d.feed([event(2_000, "late")])
    assert d.store == store_before


def test_duplicates_are_counted_once() -> None:
    d = Driver()
    emitted = d.feed([event(1_000, "a"), event(1_000, "a"), event(2_000, "b"), beat(60_000)])
    assert counts(emitted) == [(0, 2, 1, False)]
    assert [r.outcome for r in d.results] == ["accepted", "duplicate", "accepted", "heartbeat"]


def test_duplicate_of_an_emitted_window_does_not_re_emit() -> None:
    d = Driver()
    d.feed([event(1_000, "a"), beat(60_000)])
    assert d.feed([event(1_000, "a")]) == []
    assert d.results[-1].outcome == "duplicate"


def test_out_of_order_events_land_in_their_windows() -> None:
    d = Driver()
    emitted = d.feed([event(50_000, "a"), event(10_000, "b"), event(70_000, "c"), event(30_000, "d"),
                      event(65_000, "e"), beat(200_000)])
    assert counts(emitted) == [
        (0, 2, 1, False),  # the 70 s event completes [0, 60s): a and b
        (0, 3, 2, False),  # d at 30 s is late but within the lateness: re-emitted
        (0, 3, 3, True),  # final
        (60, 2, 1, True),  # c and e, complete and closed by the 200 s heartbeat
    ]


def test_a_jump_past_end_and_lateness_emits_once_as_final() -> None:
    d = Driver()
    assert counts(d.feed([event(10_000, "a"), beat(500_000)])) == [(0, 1, 1, True)]


def test_keys_are_separate_rows_in_a_stable_order() -> None:
    d = Driver()
    emitted = d.feed([event(1_000, "a", direction="out"), event(2_000, "b", direction="in"),
                      event(3_000, "c", class_name="car"), beat(60_000)])
    assert [(v["class_name"], v["direction"], v["count"]) for v in emitted] == [
        ("car", "in", 1), ("person", "in", 1), ("person", "out", 1)]


def test_stream_time_is_per_partition() -> None:
    d = Driver()
    d.feed([event(1_000, "a", camera="c0")], partition=0)
    assert d.feed([event(500_000, "b", camera="c1")], partition=1) == []
    assert counts(d.feed([beat(60_000, camera="c0")], partition=0)) == [(0, 1, 1, False)]


def test_end_of_stream_finalises_the_camera_now() -> None:
    d = Driver()
    d.feed([event(1_000, "a"), event(61_000, "b"), event(62_000, "x", camera="other")])
    emitted = d.feed([beat(65_000, end_of_stream=True)])
    assert [(v["camera_id"],) + c for v, c in zip(emitted, counts(emitted))] == [
        ("cam1", 0, 1, 2, True),  # v1 went out at 61 s, final now
        ("cam1", 60, 1, 1, True),  # still filling, final now
    ]
    assert d.window_keys() == [count_key("other", "door", "person", "in")]  # other cameras wait


def test_after_end_of_stream_its_windows_are_closed_for_that_camera() -> None:
    d = Driver()
    d.feed([event(1_000, "a"), beat(65_000, end_of_stream=True)])
    d.feed([event(62_000, "new-session")])
    assert d.results[-1].outcome == "too_late"
    d.feed([event(120_000, "next-window")])
    assert d.results[-1].outcome == "accepted"


def test_occupancy_summary_per_window() -> None:
    d = Driver()
    emitted = d.feed([sample(1_000 * i, i, occ) for i, occ in enumerate([0, 2, 3, 1, 4], start=1)]
                     + [beat(500_000)])
    assert emitted == [{"camera_id": "cam1", "rule": "lobby", "class_name": "person",
                        "window_start_ms": 0, "window_end_ms": 60_000, "samples": 5, "occupancy_max": 4,
                        "occupancy_mean": 2.0, "version": 1, "final": True}]
    assert d.results[-1].emissions[0].record == WINDOW_OCCUPANCY


def test_occupancy_samples_are_de_duplicated_by_stream_and_seq() -> None:
    d = Driver()
    emitted = d.feed([sample(1_000, 1, 2), sample(2_000, 2, 4), sample(1_000, 1, 2),  # re-delivered
                      sample(1_500, 1, 6, stream_id="s2"),  # same seq, another stream session
                      beat(500_000)])
    assert [(v["samples"], v["occupancy_max"], v["occupancy_mean"]) for v in emitted] == [(3, 6, 4.0)]
    assert [r.outcome for r in d.results[:4]] == ["accepted", "accepted", "duplicate", "accepted"]


def test_occupancy_samples_advance_time_like_heartbeats() -> None:
    d = Driver()
    d.feed([event(1_000, "a")])
    assert counts([v for v in d.feed([sample(60_000, 1, 0)]) if "count" in v]) == [(0, 1, 1, False)]


def test_refuses_state_of_another_version() -> None:
    store = {count_key("cam1", "door", "person", "in"): {"v": 999, "kind": "count"}}
    with pytest.raises(AggregationStateError, match="version"):
        WindowAggregator(SPEC, store).apply(0, *event(1_000, "a"))


def test_state_is_not_written_until_take_writes() -> None:
    store: dict = {}
    aggregator = WindowAggregator(SPEC, store)
    aggregator.apply(0, *event(1_000, "a"))
    assert store == {}
    assert len(aggregator.take_writes()) == 2  # the partition record and the key record
    assert aggregator.take_writes() == {}


def test_windows_spec_is_validated() -> None:
    with pytest.raises(ValueError):
        WindowSpec(window_ms=0, allowed_lateness_ms=0)


# --- restarts: state restored from the changelog, input replayed from the committed offset ----


def traffic(seed: int, n: int = 400) -> list:
    """Two cameras' events, occupancy and heartbeats, with late and re-delivered records."""
    import random

    rng = random.Random(seed)
    records, now = [], 0
    for i in range(n):
        now += rng.randint(0, 2_500)
        camera = rng.choice(["c1", "c2"])
        roll = rng.random()
        if roll < 0.4:
            late = rng.choice([0, 0, 0, 5_000, 25_000, 45_000, 80_000])  # some beyond the lateness
            records.append(event(max(0, now - late), f"e{i}", camera=camera,
                                 direction=rng.choice(["in", "out"])))
        elif roll < 0.6:
            records.append(sample(now, i, rng.randint(0, 5), camera=camera))
        elif roll < 0.75 and records:
            records.append(rng.choice(records))  # at-least-once: something again
        else:
            records.append(beat(now, camera=camera))
    return records + [beat(now + 200_000, camera="c1")]


def window_id(value: dict) -> tuple:
    return (value["camera_id"], value["rule"], value["class_name"], value.get("direction"),
            value["window_start_ms"])


def check_log(log: list[dict]) -> dict[tuple, dict]:
    """Per window: versions never go back, a version always means the same content; returns the last."""
    by_version: dict[tuple, dict] = {}
    last: dict[tuple, dict] = {}
    for value in log:
        wid = window_id(value)
        assert by_version.setdefault((wid, value["version"]), value) == value, f"{wid} v{value['version']} changed"
        if wid in last:
            assert value["version"] >= last[wid]["version"], f"{wid}: version went back"
        last[wid] = value
    return last


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_restart_from_changelog_gives_the_same_final_windows(seed: int) -> None:
    import copy
    import random

    records = traffic(seed)
    full = Driver()
    snapshots, emitted = [], []
    for rec in records:
        emitted.append(full.feed([rec]))
        snapshots.append(copy.deepcopy(full.store))
    final = check_log([v for step in emitted for v in step])
    assert all(v["final"] for v in final.values())
    assert full.window_keys() == []

    rng = random.Random(seed)
    for _ in range(25):
        k = rng.randrange(len(records))  # the changelog holds the state after record k
        j = rng.randint(max(0, k - 30), k)  # offsets were committed up to record j (j <= k)
        m = min(len(records) - 1, k + rng.choice([0, 1]))  # results of record k+1 may be out, its state not
        before_crash = [v for step in emitted[: m + 1] for v in step]
        restarted = Driver(store=copy.deepcopy(snapshots[k]))
        after = restarted.feed(records[j + 1:])
        assert check_log(before_crash + after) == final, f"crash after {k}, replay from {j}"

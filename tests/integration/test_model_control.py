"""Concurrent changes of the model assignment through the real broker and real ClickHouse:
the first writer of a revision wins, a stale write is ignored by every reader, and the
loser re-applies its change on top of the winner, so no operator's change is lost."""

from __future__ import annotations

import threading

import pytest

from pipeline.config import Settings
from pipeline.shadow import assignment as am
from pipeline.shadow import control
from pipeline.sinks.clickhouse import make_client
from tests.integration.shadow_support import B1, wait_for

pytestmark = pytest.mark.integration


def test_two_changes_at_the_same_instant_both_take_effect(settings: Settings) -> None:
    b_written = threading.Event()
    calls: list[int] = []

    def slow_shadow(a: am.Assignment) -> am.Assignment:
        """Operator A read the assignment, then B changed it before A wrote."""
        calls.append(a.revision)
        b_written.wait(30)
        return am.set_shadow(a, B1, 0.25, "alice", control.now_ms())

    a_thread = threading.Thread(target=lambda: control.change(settings, slow_shadow))
    a_thread.start()
    wait_for(lambda: calls, 30, "operator A's read")
    control.change(settings, lambda a: am.set_canary(a, B1, 0.5, "bob", control.now_ms()))
    b_written.set()
    a_thread.join(60)

    final = control.read_assignment(settings)
    assert final.canary == am.Canary(B1, 0.5) and final.shadows == (am.ShadowRun(B1, 0.25),)
    assert (final.revision, final.changed_by) == (2, "alice")
    assert calls == [0, 1]  # A applied its change again, on top of B's revision 1
    audit = make_client(settings.clickhouse).execute(
        "SELECT revision, changed_by FROM model_audit ORDER BY revision")
    assert audit == [(1, "bob"), (2, "alice")]  # A's stale revision 1 never took effect


def test_a_stale_write_is_ignored_by_readers_and_followers(settings: Settings) -> None:
    _, first = control.change(settings, lambda a: am.set_shadow(a, B1, 0.1, "alice", control.now_ms()))
    seen: list[am.Assignment] = []
    follower = control.ControlFollower(settings, seen.append).start()
    try:
        wait_for(lambda: seen, 30, "the follower's first assignment")
        # Written from a read of revision 0, after revision 1 landed: loses its revision.
        stale = am.set_canary(am.Assignment("yolox-nano:1"), B1, 1.0, "mallory", control.now_ms())
        assert stale.revision == first.revision == 1
        control._publish(settings, stale)
        _, third = control.change(settings, lambda a: am.set_shadow(a, B1, 0.2, "carol", control.now_ms()))
        wait_for(lambda: seen[-1].revision == 2, 30, "revision 2 at the follower")
    finally:
        follower.stop()
    assert [a.changed_by for a in seen] == ["alice", "carol"]
    assert control.read_assignment(settings) == third and third.canary is None

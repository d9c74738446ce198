"""De-duplication: one firing per condition until it clears, then one resolved; hold time; reordering."""

from __future__ import annotations

import json

import pytest

from pipeline.alerts.state import advance, initial, is_idle

# (checks as (breached, ts_ms), hold_ms, expected transitions per check)
CASES = [
    # breached once with no hold: fires at once
    ([(True, 0)], 0, ["firing"]),
    # stays breached: one firing only, however many checks
    ([(True, 0), (True, 1), (True, 2)], 0, ["firing", None, None]),
    # breach, clear: firing then resolved, once each
    ([(True, 0), (False, 1), (False, 2)], 0, ["firing", "resolved", None]),
    # never breached: nothing, and clearing an idle condition says nothing
    ([(False, 0), (False, 1)], 0, [None, None]),
    # hold 5 s: fires on the check 5 s after the breach began, not before
    ([(True, 1_000), (True, 4_000), (True, 6_000), (True, 9_000)], 5_000, [None, None, "firing", None]),
    # hold broken by one clear check: the clock starts again
    ([(True, 0), (True, 4_000), (False, 4_500), (True, 5_000), (True, 9_000), (True, 10_000)], 5_000,
     [None, None, None, None, None, "firing"]),
    # a breach shorter than the hold never fires, so its end resolves nothing
    ([(True, 0), (False, 1_000)], 5_000, [None, None]),
    # fire, resolve, fire again: a new condition episode gets a new firing
    ([(True, 0), (False, 1), (True, 2), (False, 3)], 0, ["firing", "resolved", "firing", "resolved"]),
    # an older check (replay, reordering) while firing is ignored: no resolve from the past
    ([(True, 10), (False, 5), (True, 11)], 0, ["firing", None, None]),
    # equal time (a window re-emitted as final) is judged
    ([(True, 10), (False, 10)], 0, ["firing", "resolved"]),
]


@pytest.mark.parametrize("checks, hold_ms, expected", CASES)
def test_transitions(checks: list[tuple[bool, int]], hold_ms: int, expected: list) -> None:
    state, got = None, []
    for breached, ts_ms in checks:
        state, transition = advance(state, breached, ts_ms, hold_ms)
        got.append(transition)
        assert json.loads(json.dumps(state)) == state  # fits a JSON changelog
    assert got == expected


def test_unchanged_state_is_the_same_object() -> None:
    state, _ = advance(None, True, 0)
    assert advance(state, True, -1)[0] is state


def test_idle_only_without_firing_or_pending_breach() -> None:
    assert is_idle(initial())
    assert not is_idle(advance(None, True, 0, hold_ms=10)[0])  # pending
    assert not is_idle(advance(None, True, 0)[0])  # firing
    assert is_idle(advance(advance(None, True, 0)[0], False, 1)[0])

"""De-duplication of alerts: one ``firing`` per condition until it clears, then one ``resolved``.

Pure functions over a plain dict (JSON-able, so it lives in the alerter's changelog table):

``{"firing": bool, "breach_since_ms": int | None, "last_ts_ms": int}``

A condition is identified by its ``alert_id``; its checks arrive with a time (event time for
stream rules, wall time for the clock-driven ones). A check older than the newest one seen
for that condition is ignored, so replayed or reordered input cannot flip the state back.
"""

from __future__ import annotations

from typing import Literal, TypedDict

Transition = Literal["firing", "resolved"]


class ConditionState(TypedDict):
    firing: bool
    breach_since_ms: int | None
    last_ts_ms: int


def initial() -> ConditionState:
    return {"firing": False, "breach_since_ms": None, "last_ts_ms": -1}


def advance(state: ConditionState | None, breached: bool, ts_ms: int,
            hold_ms: int = 0) -> tuple[ConditionState, Transition | None]:
    """The state after one check at ``ts_ms``, and the alert to publish, if any.

    ``breached`` must hold for ``hold_ms`` (from the first breaching check, in the checks'
    own time) before the condition fires; one check that is not breached resolves it.
    Returns the input state unchanged (same object) when nothing changes, so callers can
    skip the write.
    """
    current = state if state is not None else initial()
    if ts_ms < current["last_ts_ms"]:
        return current, None  # older than what we already judged: a replay or reordering
    if breached:
        since = current["breach_since_ms"] if current["breach_since_ms"] is not None else ts_ms
        fire = not current["firing"] and ts_ms - since >= hold_ms
        new: ConditionState = {"firing": current["firing"] or fire, "breach_since_ms": since, "last_ts_ms": ts_ms}
        return new, "firing" if fire else None
    new = {"firing": False, "breach_since_ms": None, "last_ts_ms": ts_ms}
    return new, "resolved" if current["firing"] else None


def is_idle(state: ConditionState) -> bool:
    """Nothing firing and no breach pending: the condition's entry may be dropped (bounded state)."""
    return not state["firing"] and state["breach_since_ms"] is None

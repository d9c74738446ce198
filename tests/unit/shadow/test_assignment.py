"""Model assignment changes and the deterministic sample / canary maths (pure)."""

from __future__ import annotations

from contextlib import nullcontext as DoesNotRaise

import pytest

from pipeline.codec import default_codec
from pipeline.shadow import assignment as am
from pipeline.shadow.assignment import Assignment, AssignmentError

A = "yolox-nano:1"
B = "yolox-nano:1-b1"
C = "yolox-nano:2"


def test_promote_then_rollback_restores_the_previous_primary() -> None:
    a0 = Assignment(A)
    a1 = am.promote(a0, B, "alice", 1000)
    assert (a1.primary, a1.history, a1.revision, a1.changed_by, a1.action) == (B, (A,), 1, "alice", "promote")
    a2 = am.rollback(a1, "bob", 2000, "looked worse")
    assert (a2.primary, a2.history, a2.revision, a2.changed_by, a2.reason) == (A, (), 2, "bob", "looked worse")


@pytest.mark.parametrize("start, failed, expected_primary, expectation", [
    # the failed version still serves: roll back to its predecessor
    pytest.param(Assignment(B, history=(A,)), B, A, DoesNotRaise(), id="failed-primary-rolls-back"),
    # another worker already rolled back: nothing changes (no double rollback past A)
    pytest.param(Assignment(A, history=()), B, A, DoesNotRaise(), id="already-rolled-back-is-a-no-op"),
    # a manual rollback with no history is an error
    pytest.param(Assignment(A), None, None, pytest.raises(AssignmentError), id="nothing-to-roll-back-to"),
])
def test_rollback(start, failed, expected_primary, expectation) -> None:
    with expectation:
        assert am.rollback(start, "auto", 1, failed=failed).primary == expected_primary


def test_promote_rejects_the_current_primary_and_bad_keys() -> None:
    with pytest.raises(AssignmentError):
        am.promote(Assignment(A), A, "x", 1)
    with pytest.raises(AssignmentError):
        am.promote(Assignment(A), "no-version", "x", 1)


def test_promoting_a_shadow_candidate_ends_its_shadow_run_and_canary() -> None:
    a = am.set_canary(am.set_shadow(Assignment(A), B, 0.25, "x", 1), B, 0.5, "x", 2)
    assert a.shadow_rate == 0.25 and a.canary == am.Canary(B, 0.5)
    promoted = am.promote(a, B, "x", 3)
    assert promoted.shadows == () and promoted.canary is None and promoted.shadow_rate == 0.0


@pytest.mark.parametrize("rate, expectation", [
    pytest.param(0.0, DoesNotRaise(), id="zero-stops"),
    pytest.param(1.0, DoesNotRaise(), id="all"),
    pytest.param(1.5, pytest.raises(AssignmentError), id="above-one"),
    pytest.param(-0.1, pytest.raises(AssignmentError), id="negative"),
])
def test_shadow_rate_bounds(rate, expectation) -> None:
    with expectation:
        a = am.set_shadow(Assignment(A), B, rate, "x", 1)
        assert a.shadow_rate == rate


def test_sample_is_deterministic_and_near_the_rate() -> None:
    picks = [am.sampled("cam-1", seq, 0.2) for seq in range(5000)]
    assert picks == [am.sampled("cam-1", seq, 0.2) for seq in range(5000)]
    assert 0.17 < sum(picks) / len(picks) < 0.23
    assert all(am.sampled("cam-1", s, 1.0) for s in range(100))
    assert not any(am.sampled("cam-1", s, 0.0) for s in range(100))


def test_a_larger_share_keeps_every_camera_of_a_smaller_one() -> None:
    cams = [f"cam-{i}" for i in range(400)]
    small = {c for c in cams if am.in_share(c, 0.1)}
    large = {c for c in cams if am.in_share(c, 0.5)}
    assert small <= large and 20 < len(small) < 60 and 160 < len(large) < 240


def test_model_for_camera_follows_the_canary() -> None:
    a = am.set_canary(Assignment(A), B, 0.5, "x", 1)
    served = {c: a.model_for_camera(c) for c in (f"cam-{i}" for i in range(50))}
    assert set(served.values()) == {A, B}
    assert all((m == B) == am.in_share(c, 0.5) for c, m in served.items())


@pytest.mark.parametrize("canary, ended", [
    pytest.param(am.Canary(B, 0.5), True, id="failed-canary-ends"),
    # another worker already ended it, or an operator moved on to another canary: no change
    pytest.param(None, False, id="already-ended-is-a-no-op"),
    pytest.param(am.Canary(C, 0.5), False, id="another-canary-is-kept"),
])
def test_a_failed_canary_ends_only_while_it_is_the_canary(canary, ended) -> None:
    a = Assignment(A, canary=canary)
    after = am.end_failed_canary(a, B, "auto:w1", 5, "load failed: sha256 mismatch")
    if not ended:
        assert after is a
        return
    assert (after.canary, after.primary, after.action, after.subject, after.changed_by, after.reason) == (
        None, A, "canary", B, "auto:w1", "share 0; load failed: sha256 mismatch")


def test_the_avro_record_round_trips() -> None:
    a = am.set_canary(am.set_shadow(am.promote(Assignment(A), B, "x", 5), C, 0.1, "y", 6), C, 0.2, "z", 7)
    codec = default_codec()
    decoded = codec.decode_as(codec.encode(am.MODEL_ASSIGNMENT, am.to_record(a)), am.MODEL_ASSIGNMENT)
    assert am.from_record(decoded) == a


def test_limits_judge_the_promoted_version_only() -> None:
    strict = am.FailoverLimits(max_latency_ms=1.0)
    promoted = am.promote(Assignment(A), B, "x", 1, limits=strict)
    assert promoted.limits == strict
    assert am.rollback(promoted, "auto", 2, failed=B).limits == am.FailoverLimits()

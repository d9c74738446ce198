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


# -- camera groups -----------------------------------------------------------------------------------

PARKING = am.GroupPrimary("parking-*", B)


@pytest.mark.parametrize("a, camera, served", [
    pytest.param(Assignment(A, groups=(PARKING,)), "parking-3", B, id="group-camera-gets-its-primary"),
    pytest.param(Assignment(A, groups=(PARKING,)), "gate-1", A, id="other-camera-gets-the-global-primary"),
    pytest.param(Assignment(A, groups=(PARKING,)), "Parking-3", A, id="globs-are-case-sensitive"),
    pytest.param(Assignment(A, groups=(PARKING, am.GroupPrimary("parking-[0-4]", C))), "parking-3", B,
                 id="first-matching-group-wins"),
    # a group is a deliberate choice for its cameras: the canary (a rollout of the global line) does not take them
    pytest.param(Assignment(A, groups=(PARKING,), canary=am.Canary(C, 1.0)), "parking-3", B, id="group-before-canary"),
    pytest.param(Assignment(A, groups=(PARKING,), canary=am.Canary(C, 1.0)), "gate-1", C, id="canary-before-global"),
])
def test_model_for_camera_precedence(a, camera, served) -> None:
    assert a.model_for_camera(camera) == served


@pytest.mark.parametrize("start, model, cameras, groups, reason", [
    pytest.param(Assignment(A), B, "parking-*", (PARKING,), "cameras parking-*: global -> yolox-nano:1-b1",
                 id="new-group"),
    pytest.param(Assignment(A, groups=(PARKING,)), C, "parking-*", (am.GroupPrimary("parking-*", C, (B,)),),
                 "cameras parking-*: yolox-nano:1-b1 -> yolox-nano:2", id="old-group-primary-goes-on-its-history"),
    pytest.param(Assignment(A, groups=(PARKING,)), C, "gate-*", (PARKING, am.GroupPrimary("gate-*", C)),
                 "cameras gate-*: global -> yolox-nano:2", id="new-groups-go-last"),
    # pinning cameras to the current global primary keeps them there through later global promotions
    pytest.param(Assignment(A), A, "gate-*", (am.GroupPrimary("gate-*", A),), "cameras gate-*: global -> yolox-nano:1",
                 id="pin-to-the-global-primary"),
])
def test_promote_a_camera_group(start, model, cameras, groups, reason) -> None:
    after = am.promote(start, model, "ops", 5, cameras=cameras)
    assert (after.groups, after.reason, after.subject, after.action) == (groups, reason, model, "promote")
    assert (after.primary, after.history, after.canary, after.shadows) == (
        start.primary, start.history, start.canary, start.shadows)


@pytest.mark.parametrize("model, cameras, message", [
    pytest.param(B, "", "non-empty glob", id="empty-glob"),
    pytest.param(B, "  ", "non-empty glob", id="blank-glob"),
    pytest.param("no-version", "parking-*", "NAME:VERSION", id="bad-key"),
    pytest.param(B, "parking-*", "already the primary of cameras parking-*", id="already-the-group-primary"),
])
def test_promote_a_camera_group_refuses(model, cameras, message) -> None:
    with pytest.raises(AssignmentError, match=message):
        am.promote(Assignment(A, groups=(PARKING,)), model, "ops", 5, cameras=cameras)


def test_global_changes_leave_camera_groups_alone() -> None:
    a = Assignment(A, groups=(PARKING,), canary=am.Canary(B, 0.5))
    promoted = am.promote(a, B, "ops", 1)  # B is also parking's primary: the group keeps it
    assert promoted.groups == (PARKING,) and promoted.canary is None and promoted.primary == B
    assert am.rollback(promoted, "ops", 2).groups == (PARKING,)


@pytest.mark.parametrize("start, failed, groups, subject, reason", [
    pytest.param((PARKING,), None, (), A, "cameras parking-*: yolox-nano:1-b1 -> global",
                 id="last-primary-removes-the-group"),
    pytest.param((am.GroupPrimary("parking-*", C, (B,)),), None, (PARKING,), B,
                 "cameras parking-*: yolox-nano:2 -> yolox-nano:1-b1", id="pops-the-group-history"),
    pytest.param((am.GroupPrimary("gate-*", C), PARKING), None, (am.GroupPrimary("gate-*", C),), A,
                 "cameras parking-*: yolox-nano:1-b1 -> global", id="other-groups-stay"),
    # automatic failover: the failed version still serves the group: roll it back
    pytest.param((PARKING,), B, (), A, "cameras parking-*: yolox-nano:1-b1 -> global", id="failed-group-primary"),
])
def test_rollback_a_camera_group(start, failed, groups, subject, reason) -> None:
    a = Assignment(A, history=(C,), groups=start, limits=am.FailoverLimits(max_latency_ms=1.0))
    after = am.rollback(a, "ops", 7, failed=failed, cameras="parking-*")
    assert (after.groups, after.subject, after.reason, after.action) == (groups, subject, reason, "rollback")
    assert (after.primary, after.history, after.limits) == (A, (C,), am.FailoverLimits())


@pytest.mark.parametrize("groups", [
    pytest.param((), id="group-already-removed"),
    pytest.param((am.GroupPrimary("parking-*", C, (B,)),), id="group-already-moved-on"),
    pytest.param((am.GroupPrimary("parking-*", A),), id="another-worker-rolled-it-back"),
])
def test_a_failed_group_primary_is_rolled_back_once(groups) -> None:
    a = Assignment(A, groups=groups)
    assert am.rollback(a, "auto:w2", 9, "error rate 1.00", failed=B, cameras="parking-*") is a


def test_rolling_back_an_unknown_group_names_the_known_ones() -> None:
    with pytest.raises(AssignmentError, match=r"no camera group 'gate-\*' to roll back \(groups: parking-\*\)"):
        am.rollback(Assignment(A, groups=(PARKING,)), "ops", 1, cameras="gate-*")
    with pytest.raises(AssignmentError, match="non-empty glob"):
        am.rollback(Assignment(A, groups=(PARKING,)), "ops", 1, cameras="")


def test_promote_then_rollback_a_group_restores_the_global_primary_for_its_cameras() -> None:
    a0 = Assignment(A)
    a2 = am.promote(am.promote(a0, B, "ops", 1, cameras="cam-1*"), C, "ops", 2, cameras="cam-1*")
    assert [a2.model_for_camera(c) for c in ("cam-0", "cam-1", "cam-12")] == [A, C, C]
    a3 = am.rollback(a2, "ops", 3, "worse at night", cameras="cam-1*")
    assert a3.model_for_camera("cam-1") == B and a3.reason.endswith("; worse at night")
    a4 = am.rollback(a3, "ops", 4, cameras="cam-1*")
    assert a4.groups == () and a4.model_for_camera("cam-1") == A and a4.revision == 4


def test_serving_lists_every_version_routed_to_once() -> None:
    a = Assignment(A, groups=(PARKING, am.GroupPrimary("gate-*", A)), canary=am.Canary(C, 0.1))
    assert a.serving == (A, C, B)


def test_groups_round_trip_through_the_avro_record() -> None:
    a = am.promote(am.promote(Assignment(A), B, "x", 1, cameras="parking-*"), C, "x", 2, cameras="parking-*")
    a = am.promote(a, A, "x", 3, cameras="gate-?")
    codec = default_codec()
    decoded = am.from_record(codec.decode_as(codec.encode(am.MODEL_ASSIGNMENT, am.to_record(a)), am.MODEL_ASSIGNMENT))
    assert decoded == a and decoded.groups == (am.GroupPrimary("parking-*", C, (B,)), am.GroupPrimary("gate-?", A))


def test_a_record_written_before_camera_groups_still_decodes() -> None:
    """Workers and the CLI read model-control records written by the v1 schema (no groups)."""
    import json

    from pipeline.codec import SCHEMAS_DIR, Codec

    v1 = json.loads((SCHEMAS_DIR / "history" / "model_assignment.v1.avsc").read_text())
    old = am.promote(Assignment(A), B, "x", 1)
    record = {k: v for k, v in am.to_record(old).items() if k != "groups"}
    data = Codec([v1]).encode(am.MODEL_ASSIGNMENT, record)
    assert am.from_record(default_codec().decode_as(data, am.MODEL_ASSIGNMENT)) == old

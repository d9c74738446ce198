"""Which model version serves which traffic: the model assignment, as pure state and maths.

An ``Assignment`` is the value of the compacted ``model-control`` topic: the global
primary version, the versions it replaced (the rollback stack), camera groups (a glob on
camera ids with a primary and a rollback stack of its own), candidates run in shadow with
their sample rate, an optional canary (a deterministic share of cameras served by a
candidate as primary), and the failover limits. Every change is a new ``Assignment``
with ``revision + 1`` and who/when/what, made by the functions here, never by mutation.

Which version serves a camera (``Assignment.model_for_camera``): the primary of the first
camera group whose glob matches it, else the canary if the camera is in its share, else
the global primary. A group's primary is a deliberate choice for those cameras (other
lighting, other hardware, a model tuned for them), so neither a canary nor a global
promotion or rollback moves them; the canary is a rollout step of the global line and
only ever replaces the global primary.

Sampling and canary membership hash stable identifiers (never Python's salted ``hash``),
so every worker, the comparator and a re-run agree on which frames and cameras are in.
"""

from __future__ import annotations

import fnmatch
import hashlib
import struct
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.shadow.exceptions import AssignmentError

#: Avro record name of the model-control value (schemas/model_assignment.avsc).
MODEL_ASSIGNMENT = "camcount.ModelAssignment"
#: Rollback history kept on the topic; older primaries drop off (the value stays small).
MAX_HISTORY = 10
_HASH_SPACE = float(2**64)


@dataclass(frozen=True)
class ShadowRun:
    """A candidate run on ``rate`` (0..1] of the frames, on ``frames.shadow``."""

    model: str
    rate: float


@dataclass(frozen=True)
class Canary:
    """``model`` serves as primary for ``share`` (0..1] of the cameras."""

    model: str
    share: float


@dataclass(frozen=True)
class GroupPrimary:
    """``primary`` serves the cameras whose id matches the glob ``cameras`` (``fnmatchcase``:
    ``*``, ``?``, ``[seq]``; case-sensitive on every host). ``history``: its earlier
    primaries, newest last; rolling back with an empty history removes the group."""

    cameras: str
    primary: str
    history: tuple[str, ...] = ()

    def matches(self, camera_id: str) -> bool:
        return fnmatch.fnmatchcase(camera_id, self.cameras)


@dataclass(frozen=True)
class FailoverLimits:
    """When a serving version is rolled back by itself, measured over ``window_batches``.

    ``max_error_rate``: failed batches / batches. Lower catches a broken model sooner but
    rolls back on a few transient errors. ``max_latency_ms``: p95 model run time per batch;
    lower protects freshness but a busy host may trip it. ``min_batches``: batches seen
    before any verdict; higher avoids judging on warm-up noise, reacts later.
    """

    max_error_rate: float = 0.5
    max_latency_ms: float = 5_000.0
    min_batches: int = 5
    window_batches: int = 50


@dataclass(frozen=True)
class Assignment:
    primary: str
    history: tuple[str, ...] = ()  # earlier primaries, newest last: rollback pops from here
    groups: tuple[GroupPrimary, ...] = ()  # in the order added: the first matching glob wins
    shadows: tuple[ShadowRun, ...] = ()
    canary: Canary | None = None
    limits: FailoverLimits = field(default_factory=FailoverLimits)
    revision: int = 0
    action: str = "init"
    subject: str = ""  # the version the last change was about
    changed_by: str = "config"
    changed_at_ms: int = 0
    reason: str = ""

    @property
    def shadow_rate(self) -> float:
        """The fraction of frames mirrored to ``frames.shadow`` (the largest candidate rate)."""
        return max((s.rate for s in self.shadows), default=0.0)

    @property
    def serving(self) -> tuple[str, ...]:
        """Every version serving some cameras: the global primary, the canary, group primaries."""
        models = [self.primary] + ([self.canary.model] if self.canary else []) + [g.primary for g in self.groups]
        return tuple(dict.fromkeys(models))

    def group(self, cameras: str) -> GroupPrimary | None:
        """The group with exactly this glob, if any."""
        return next((g for g in self.groups if g.cameras == cameras), None)

    def model_for_camera(self, camera_id: str) -> str:
        """The version serving ``camera_id`` as primary: its group's primary (first matching
        glob), else the canary if the camera is in its share, else the global primary."""
        for group in self.groups:
            if group.matches(camera_id):
                return group.primary
        if self.canary is not None and in_share(camera_id, self.canary.share):
            return self.canary.model
        return self.primary


def parse_model_key(key: str) -> tuple[str, str]:
    name, sep, version = key.partition(":")
    if not sep or not name or not version:
        raise AssignmentError(f"model must be NAME:VERSION, got {key!r}")
    return name, version


def check_cameras(cameras: str) -> str:
    """A camera group's glob (``parking-*``), refused when empty."""
    if not isinstance(cameras, str) or not cameras.strip():
        raise AssignmentError(f"a camera group needs a non-empty glob of camera ids, got {cameras!r}")
    return cameras


def _fraction(*parts: object) -> float:
    """A stable number in [0, 1) from ``parts`` (blake2b, the same on every host and run)."""
    data = "\x1f".join(str(p) for p in parts).encode()
    (value,) = struct.unpack(">Q", hashlib.blake2b(data, digest_size=8).digest())
    return value / _HASH_SPACE


def sampled(camera_id: str, seq: int, rate: float) -> bool:
    """Whether frame (camera_id, seq) is in the ``rate`` sample; rate 1 takes every frame."""
    return rate >= 1.0 or (rate > 0.0 and _fraction("frame", camera_id, seq) < rate)


def in_share(camera_id: str, share: float) -> bool:
    """Whether ``camera_id`` is in the ``share`` of cameras (stable as the share grows:
    raising it only adds cameras)."""
    return share >= 1.0 or (share > 0.0 and _fraction("camera", camera_id) < share)


def _check_rate(what: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise AssignmentError(f"{what} must be within 0..1, got {value}")
    return float(value)


def _next(a: Assignment, action: str, subject: str, by: str, now_ms: int, reason: str = "",
          **changes: Any) -> Assignment:
    return replace(a, revision=a.revision + 1, action=action, subject=subject, changed_by=by,
                   changed_at_ms=now_ms, reason=reason, **changes)


def promote(a: Assignment, model: str, by: str, now_ms: int, reason: str = "",
            limits: FailoverLimits | None = None, cameras: str | None = None) -> Assignment:
    """``model`` becomes the global primary; the old primary goes on the rollback stack. A
    promoted candidate stops running in shadow and stops being the canary. Camera groups
    keep their primaries. ``limits`` (default: the defaults) judge the promoted version
    until the next change.

    With ``cameras`` (a glob), ``model`` becomes the primary of that camera group instead
    (created at the end of the groups if new; its old primary goes on the group's rollback
    stack); the global primary, shadows and canary are left as they are."""
    parse_model_key(model)
    if cameras is not None:
        return _promote_group(a, model, check_cameras(cameras), by, now_ms, reason, limits)
    if model == a.primary:
        raise AssignmentError(f"{model} is already the primary")
    history = (a.history + (a.primary,))[-MAX_HISTORY:]
    shadows = tuple(s for s in a.shadows if s.model != model)
    canary = None if a.canary is not None and a.canary.model == model else a.canary
    return _next(a, "promote", model, by, now_ms, reason, primary=model, history=history, shadows=shadows,
                 canary=canary, limits=limits or FailoverLimits())


def _promote_group(a: Assignment, model: str, cameras: str, by: str, now_ms: int, reason: str,
                   limits: FailoverLimits | None) -> Assignment:
    old = a.group(cameras)
    if old is not None and old.primary == model:
        raise AssignmentError(f"{model} is already the primary of cameras {cameras}")
    group = (GroupPrimary(cameras, model) if old is None else
             GroupPrimary(cameras, model, (old.history + (old.primary,))[-MAX_HISTORY:]))
    groups = (a.groups + (group,)) if old is None else tuple(group if g is old else g for g in a.groups)
    why = _group_reason(cameras, old.primary if old else None, model, reason)
    return _next(a, "promote", model, by, now_ms, why, groups=groups, limits=limits or FailoverLimits())


def _group_reason(cameras: str, before: str | None, after: str | None, reason: str) -> str:
    """``cameras GLOB: OLD -> NEW`` (``global`` when the global primary serves them), the
    group's change as the audit log shows it, then the operator's reason."""
    text = f"cameras {cameras}: {before or 'global'} -> {after or 'global'}"
    return text + (f"; {reason}" if reason else "")


def rollback(a: Assignment, by: str, now_ms: int, reason: str = "", failed: str | None = None,
             cameras: str | None = None) -> Assignment:
    """The previous primary serves again; camera groups keep theirs. With ``cameras``, the
    group's previous primary serves its cameras again, or with no previous one the group is
    removed and its cameras go back to the global primary (or the canary).

    With ``failed`` (automatic failover) nothing changes unless ``failed`` is still the
    primary (of the group, with ``cameras``): several workers may report one failure."""
    if cameras is not None:
        return _rollback_group(a, check_cameras(cameras), by, now_ms, reason, failed)
    if failed is not None and a.primary != failed:
        return a
    if not a.history:
        raise AssignmentError(f"nothing to roll back to: {a.primary} has no predecessor")
    # The version rolled back to served before: judged by the default limits again, so a
    # strict limit set for a candidate cannot roll back its predecessor too.
    return _next(a, "rollback", a.history[-1], by, now_ms, reason, primary=a.history[-1], history=a.history[:-1],
                 limits=FailoverLimits())


def _rollback_group(a: Assignment, cameras: str, by: str, now_ms: int, reason: str,
                    failed: str | None) -> Assignment:
    old = a.group(cameras)
    if failed is not None and (old is None or old.primary != failed):
        return a
    if old is None:
        known = ", ".join(g.cameras for g in a.groups) or "none"
        raise AssignmentError(f"no camera group {cameras!r} to roll back (groups: {known})")
    group = GroupPrimary(cameras, old.history[-1], old.history[:-1]) if old.history else None
    groups = tuple(g for g in (group if g is old else g for g in a.groups) if g is not None)
    subject = group.primary if group else a.primary
    why = _group_reason(cameras, old.primary, group.primary if group else None, reason)
    return _next(a, "rollback", subject, by, now_ms, why, groups=groups, limits=FailoverLimits())


def set_shadow(a: Assignment, model: str, rate: float, by: str, now_ms: int) -> Assignment:
    """Run ``model`` in shadow on ``rate`` of the frames; rate 0 stops it."""
    parse_model_key(model)
    rate = _check_rate("shadow rate", rate)
    others = tuple(s for s in a.shadows if s.model != model)
    shadows = others + ((ShadowRun(model, rate),) if rate > 0 else ())
    return _next(a, "shadow", model, by, now_ms, f"rate {rate:g}", shadows=shadows)


def set_canary(a: Assignment, model: str, share: float, by: str, now_ms: int, reason: str = "") -> Assignment:
    """Serve ``share`` of the cameras with ``model`` as primary; share 0 ends the canary."""
    parse_model_key(model)
    share = _check_rate("canary share", share)
    canary = Canary(model, share) if share > 0 else None
    why = f"share {share:g}" + (f"; {reason}" if reason else "")
    return _next(a, "canary", model, by, now_ms, why, canary=canary)


def end_failed_canary(a: Assignment, model: str, by: str, now_ms: int, reason: str) -> Assignment:
    """End the canary of ``model`` (automatic failover). Nothing changes unless ``model`` is
    still the canary: several workers may report one failure."""
    if a.canary is None or a.canary.model != model:
        return a
    return set_canary(a, model, 0.0, by, now_ms, reason)


# -- the Avro record (schemas/model_assignment.avsc) -----------------------------------------------


def to_record(a: Assignment) -> dict[str, Any]:
    return {
        "primary": a.primary, "history": list(a.history),
        "groups": [{"cameras": g.cameras, "primary": g.primary, "history": list(g.history)} for g in a.groups],
        "shadows": [{"model": s.model, "rate": s.rate} for s in a.shadows],
        "canary": None if a.canary is None else {"model": a.canary.model, "share": a.canary.share},
        "max_error_rate": a.limits.max_error_rate, "max_latency_ms": a.limits.max_latency_ms,
        "min_batches": a.limits.min_batches, "window_batches": a.limits.window_batches,
        "revision": a.revision, "action": a.action, "subject": a.subject, "changed_by": a.changed_by,
        "changed_at_ms": a.changed_at_ms, "reason": a.reason,
    }


def from_record(r: dict[str, Any]) -> Assignment:
    canary = r.get("canary")
    return Assignment(
        primary=r["primary"], history=tuple(r["history"]),
        groups=tuple(GroupPrimary(g["cameras"], g["primary"], tuple(g["history"])) for g in r.get("groups", ())),
        shadows=tuple(ShadowRun(s["model"], s["rate"]) for s in r["shadows"]),
        canary=None if canary is None else Canary(canary["model"], canary["share"]),
        limits=FailoverLimits(r["max_error_rate"], r["max_latency_ms"], r["min_batches"], r["window_batches"]),
        revision=r["revision"], action=r["action"], subject=r["subject"], changed_by=r["changed_by"],
        changed_at_ms=r["changed_at_ms"], reason=r["reason"],
    )

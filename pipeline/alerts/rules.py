"""Alert rules as pure functions: an input record (or a clock reading) -> the checks it answers.

A ``Check`` says, for one condition (``alert_id``), whether it is breached at ``ts_ms``;
``state.advance`` turns a sequence of checks into firing/resolved transitions and
``alert_value`` turns a transition into an ``Alert`` record. No I/O and no clock here: the
faust app and the tests feed records and times in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from pipeline.alerts.config import (
    CountRule,
    DisagreementRule,
    InferenceRule,
    OccupancyRule,
    RuleConfig,
    SilenceRule,
)
from pipeline.alerts.state import Transition


@dataclass(frozen=True)
class Check:
    """One condition judged once: breached or not, the measured value against its threshold."""

    rule: RuleConfig
    kind: str
    alert_id: str
    camera_id: str | None
    breached: bool
    value: float
    threshold: float
    ts_ms: int
    #: What was measured, for the message (``occupancy of lobby/person``).
    subject: str
    #: ``>`` or ``<``: which side of the threshold is the breach.
    op: str = ">"
    #: How long the breach must last before firing (occupancy rules).
    hold_ms: int = 0


def _matches(wanted: str | None, actual: str) -> bool:
    return wanted is None or wanted == actual


def _model_matches(wanted: str | None, name: str, version: str) -> bool:
    return wanted is None or wanted in (name, f"{name}:{version}")


def occupancy_checks(rules: Iterable[RuleConfig], sample: Mapping[str, Any]) -> list[Check]:
    """``OccupancySample`` -> one check per matching occupancy rule (condition: camera/zone/class)."""
    out = []
    for r in rules:
        if not (isinstance(r, OccupancyRule) and _matches(r.camera_id, sample["camera_id"])
                and _matches(r.zone, sample["rule"]) and _matches(r.class_name, sample["class_name"])):
            continue
        out.append(Check(
            r, "threshold", f"{r.name}/{sample['camera_id']}/{sample['rule']}/{sample['class_name']}",
            sample["camera_id"], sample["occupancy"] > r.above, float(sample["occupancy"]), float(r.above),
            sample["capture_ts_ms"], f"occupancy of {sample['rule']}/{sample['class_name']}", ">", r.for_ms))
    return out


def count_checks(rules: Iterable[RuleConfig], window: Mapping[str, Any]) -> list[Check]:
    """``WindowCount`` -> checks per matching count rule: one for ``above``, one for ``below``."""
    out = []
    for r in rules:
        if not (isinstance(r, CountRule) and _matches(r.camera_id, window["camera_id"])
                and _matches(r.rule, window["rule"]) and _matches(r.class_name, window["class_name"])
                and _matches(r.direction, window["direction"]) and (window["final"] or not r.final_only)):
            continue
        base = f"{r.name}/{window['camera_id']}/{window['rule']}/{window['class_name']}/{window['direction']}"
        subject = f"{window['rule']} {window['class_name']} {window['direction']} count per window"
        count = window["count"]
        for op, bound in ((">", r.above), ("<", r.below)):
            if bound is None:
                continue
            breached = count > bound if op == ">" else count < bound
            out.append(Check(r, "threshold", f"{base}/{'above' if op == '>' else 'below'}", window["camera_id"],
                             breached, float(count), float(bound), window["window_end_ms"], subject, op))
    return out


def silence_checks(rules: Iterable[RuleConfig], last_seen_ms: Mapping[str, int | None], now_ms: int,
                   watch_start_ms: int) -> list[Check]:
    """Cameras -> one check per silence rule: breached when nothing was received for ``silent_for_ms``.

    ``last_seen_ms`` maps a camera to the wall time its last heartbeat was received, ``None``
    once it ended its stream (not watched). Nothing is older than ``watch_start_ms`` (when the
    alerter started), so a restart or a camera never seen gets a full ``silent_for_ms``.
    """
    out = []
    for r in rules:
        if not isinstance(r, SilenceRule):
            continue
        cameras = dict.fromkeys(r.cameras, None) | dict(last_seen_ms)
        for camera, seen_ms in sorted(cameras.items()):
            if seen_ms is None and camera in last_seen_ms:
                continue  # ended on purpose (end_of_stream)
            silent_ms = now_ms - max(seen_ms or 0, watch_start_ms)
            out.append(Check(r, "silence", f"{r.name}/{camera}", camera, silent_ms > r.silent_for_ms,
                             silent_ms / 1000, r.silent_for_ms / 1000, now_ms, "seconds without a frame"))
    return out


def inference_checks(rules: Iterable[RuleConfig], stats: Sequence[Mapping[str, Any]], now_ms: int) -> list[Check]:
    """Per-model stats over a rule's window -> error-rate and latency checks.

    ``stats`` rows: ``model_name, model_version, frames, errors, inference_ms_p95`` (the worst
    worker's), as read for that rule's window. A model without rows is not judged.
    """
    out = []
    for r in rules:
        if not isinstance(r, InferenceRule):
            continue
        for s in stats:
            if not _model_matches(r.model, s["model_name"], s["model_version"]):
                continue
            model = f"{s['model_name']}:{s['model_version']}"
            if r.max_error_rate is not None and s["frames"] + s["errors"] > 0:
                rate = s["errors"] / (s["frames"] + s["errors"])
                out.append(Check(r, "inference_errors", f"{r.name}/{model}/errors", None,
                                 rate > r.max_error_rate, rate, r.max_error_rate, now_ms, f"{model} error rate"))
            if r.max_latency_p95_ms is not None and s["frames"] > 0:
                p95 = float(s["inference_ms_p95"])
                out.append(Check(r, "inference_latency", f"{r.name}/{model}/latency", None,
                                 p95 > r.max_latency_p95_ms, p95, r.max_latency_p95_ms, now_ms,
                                 f"{model} inference p95 ms"))
    return out


def disagreement_checks(rules: Iterable[RuleConfig], comparison: Mapping[str, Any]) -> list[Check]:
    """``ModelComparison`` -> checks per matching rule: worst precision, worst recall, |count diff|."""
    c = comparison
    out = []
    for r in rules:
        if not (isinstance(r, DisagreementRule) and _matches(r.camera_id, c["camera_id"])
                and _model_matches(r.candidate, c["candidate_model"], c["candidate_version"])
                and c["frames_compared"] >= r.min_frames_compared):
            continue
        candidate = f"{c['candidate_model']}:{c['candidate_version']}"
        base = f"{r.name}/{c['camera_id']}/{candidate}"
        measured = []
        if r.min_precision is not None and c["classes"]:
            measured.append(("precision", min(k["precision"] for k in c["classes"]), r.min_precision, "<"))
        if r.min_recall is not None and c["classes"]:
            measured.append(("recall", min(k["recall"] for k in c["classes"]), r.min_recall, "<"))
        if r.max_count_diff is not None:
            measured.append(("count_diff", abs(c["count_diff"]), r.max_count_diff, ">"))
        for metric, value, bound, op in measured:
            breached = value < bound if op == "<" else value > bound
            out.append(Check(r, "model_disagreement", f"{base}/{metric}", c["camera_id"], breached, float(value),
                             float(bound), c["window_end_ms"], f"{candidate} vs primary {metric}", op))
    return out


def alert_value(check: Check, transition: Transition) -> dict[str, Any]:
    """The ``Alert`` record (as a dict for the codec) for a condition that fired or resolved."""
    where = f" on {check.camera_id}" if check.camera_id else ""
    if transition == "firing":
        held = f" for {check.hold_ms / 1000:g} s" if check.hold_ms else ""
        text = f"{check.subject}{where} is {check.value:g}, {check.op} {check.threshold:g}{held}"
    else:
        text = f"{check.subject}{where} back to {check.value:g} (limit {check.op} {check.threshold:g})"
    return {
        "alert_id": check.alert_id, "rule": check.rule.name, "kind": check.kind, "camera_id": check.camera_id,
        "severity": check.rule.severity, "state": transition, "message": f"{check.rule.name}: {text}",
        "value": check.value, "threshold": check.threshold, "ts_ms": check.ts_ms,
    }

"""Configuration of the alerter: the rules (``alerts.rules[]``, told apart by ``type``) and its app.

Example::

    alerts:
      rules:
        - {type: occupancy, name: lobby-crowded, camera_id: cam-a, zone: lobby, above: 20, for_ms: 30000}
        - {type: count, name: few-cars, rule: gate, class_name: car, below: 5, severity: info}
        - {type: silence, name: camera-down, silent_for_ms: 60000, severity: critical}
        - {type: inference, name: slow-model, max_latency_p95_ms: 150, max_error_rate: 0.01}
        - {type: disagreement, name: candidate-off, min_recall: 0.8, max_count_diff: 3}

A field left out of a rule's filter (``camera_id``, ``zone``, ``class_name``...) matches any.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.config import Section

Severity = Literal["info", "warning", "critical"]
_NAME = {"min_length": 1, "pattern": r"^[A-Za-z0-9._-]+$"}


class OccupancyRule(Section):
    """Zone occupancy above ``above`` for ``for_ms`` of event time (from ``OccupancySample``).

    Each (camera, zone, class) is its own condition. Raising ``for_ms`` ignores short crowds
    at the cost of alerting later; ``0`` fires on the first sample above.
    """

    type: Literal["occupancy"] = "occupancy"
    name: str = Field(**_NAME)
    severity: Severity = "warning"
    camera_id: str | None = None
    zone: str | None = None
    class_name: str | None = None
    #: Fires while occupancy is strictly greater than this.
    above: int = Field(ge=0)
    #: How long (capture time) occupancy must stay above before the alert fires.
    for_ms: int = Field(0, ge=0)


class CountRule(Section):
    """Events in one window (``WindowCount`` on ``counts``) above ``above`` or below ``below``.

    Each (camera, rule, class, direction) is its own condition; each window either breaches
    (firing) or not (resolved). A window with no events at all is never emitted by the
    aggregator, so ``below`` sees low counts, not zero ones (a dead camera is ``silence``).
    """

    type: Literal["count"] = "count"
    name: str = Field(**_NAME)
    severity: Severity = "warning"
    camera_id: str | None = None
    #: The line or zone rule whose counts are watched.
    rule: str | None = None
    class_name: str | None = None
    direction: str | None = None
    above: int | None = Field(None, ge=0)
    below: int | None = Field(None, ge=1)
    #: Judge only final windows (exact counts); ``false`` also judges the provisional
    #: re-emissions, which alerts sooner on ``above`` but may flap on ``below``.
    final_only: bool = True

    @model_validator(mode="after")
    def _a_bound(self) -> "CountRule":
        if self.above is None and self.below is None:
            raise ValueError("a count rule needs 'above' or 'below' (or both)")
        return self


class SilenceRule(Section):
    """A camera that sent no frame (no ``Heartbeat``) for ``silent_for_ms``.

    Measured by the alerter's wall clock since it last *received* a heartbeat: when a camera
    is silent its event time stops, so event time cannot tell. A heartbeat with
    ``end_of_stream`` ends the watch (the stream was closed on purpose) until it sends again.
    """

    type: Literal["silence"] = "silence"
    name: str = Field(**_NAME)
    severity: Severity = "critical"
    #: Cameras watched even before their first heartbeat; any camera seen is watched too.
    cameras: list[str] = Field(default_factory=list)
    #: Lower alerts sooner; too low and a briefly stalled camera or a slow pipeline alerts.
    silent_for_ms: int = Field(60_000, ge=1_000)


class InferenceRule(Section):
    """Inference error rate or p95 latency out of bounds, per model, from ClickHouse ``inference_stats``."""

    type: Literal["inference"] = "inference"
    name: str = Field(**_NAME)
    severity: Severity = "warning"
    #: ``name`` or ``name:version``; unset watches every model.
    model: str | None = None
    #: errors / (frames + errors) over ``window_ms`` above this fires ``inference_errors``.
    max_error_rate: float | None = Field(None, ge=0, le=1)
    #: The worst worker's p95 inference latency over ``window_ms`` above this fires ``inference_latency``.
    max_latency_p95_ms: float | None = Field(None, gt=0)
    #: How far back each check looks; longer smooths spikes but alerts and resolves later.
    window_ms: int = Field(60_000, ge=1_000)

    @model_validator(mode="after")
    def _a_bound(self) -> "InferenceRule":
        if self.max_error_rate is None and self.max_latency_p95_ms is None:
            raise ValueError("an inference rule needs 'max_error_rate' or 'max_latency_p95_ms'")
        return self


class DisagreementRule(Section):
    """A candidate model that disagrees with the primary beyond a limit (``ModelComparison``)."""

    type: Literal["disagreement"] = "disagreement"
    name: str = Field(**_NAME)
    severity: Severity = "warning"
    camera_id: str | None = None
    #: ``name`` or ``name:version`` of the candidate; unset watches every candidate.
    candidate: str | None = None
    #: Fires when any class's precision (or recall) is below this.
    min_precision: float | None = Field(None, ge=0, le=1)
    min_recall: float | None = Field(None, ge=0, le=1)
    #: Fires when |candidate count - primary count| is above this.
    max_count_diff: int | None = Field(None, ge=0)
    #: Comparisons over fewer frames are too noisy to judge and are skipped.
    min_frames_compared: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _a_bound(self) -> "DisagreementRule":
        if self.min_precision is None and self.min_recall is None and self.max_count_diff is None:
            raise ValueError("a disagreement rule needs 'min_precision', 'min_recall' or 'max_count_diff'")
        return self


RuleConfig = OccupancyRule | CountRule | SilenceRule | InferenceRule | DisagreementRule


class AlertsConfig(Section):
    """The alerter: rules, how often the clock-driven ones are checked, the faust app's identity."""

    rules: list[Annotated[RuleConfig, Field(discriminator="type")]] = Field(default_factory=list)
    #: How often silence is checked (wall clock); lower alerts closer to ``silent_for_ms``.
    silence_check_interval_ms: int = Field(1_000, ge=100)
    #: How often ClickHouse ``inference_stats`` is read for the inference rules.
    inference_poll_interval_ms: int = Field(15_000, ge=1_000)
    #: Topic of ``ModelComparison`` records (without the prefix); unset: disagreement rules idle.
    comparisons_topic: str | None = None
    #: faust app id (also its consumer group and changelog prefix); the topic prefix is prepended.
    app_id: str = Field("camcount-alerter", **_NAME)
    commit_interval_ms: int = Field(2_000, ge=100)

    @model_validator(mode="after")
    def _unique_names(self) -> "AlertsConfig":
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate alert rule names: {', '.join(dupes)}")
        return self

"""Topic names and their declaration: every topic is created here, never auto-created."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.config import Settings
from pipeline.kafka.clients import check_connection, common_config

log = logging.getLogger(__name__)

FRAMES = "frames"
FRAMES_SHADOW = "frames.shadow"
DETECTIONS = "detections"
DETECTIONS_SHADOW = "detections.shadow"
COUNT_EVENTS = "count-events"
COUNTS = "counts"
ALERTS = "alerts"
MODEL_CONTROL = "model-control"

#: Topics whose bad messages go to ``<topic>.dlq``.
DATA_TOPICS = (FRAMES, FRAMES_SHADOW, DETECTIONS, DETECTIONS_SHADOW, COUNT_EVENTS, COUNTS, ALERTS)


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic camcount uses, with partitions, retention and size limits from config."""
    t = settings.topics
    data = {"retention.ms": str(t.retention_ms), "max.message.bytes": str(t.max_message_bytes)}
    dead = {"retention.ms": str(t.dlq_retention_ms), "max.message.bytes": str(t.max_message_bytes)}
    specs = [TopicSpec(name(settings, n), t.partitions, data) for n in DATA_TOPICS]
    specs += [TopicSpec(name(settings, dlq(n)), t.partitions, dead) for n in DATA_TOPICS]
    # One partition: the assignment is a small, totally ordered log that every worker reads whole.
    specs.append(TopicSpec(name(settings, MODEL_CONTROL), 1, {"cleanup.policy": "compact"}))
    return specs


def name(settings: Settings, topic: str) -> str:
    """The topic's name in this deployment (with the configured prefix)."""
    return f"{settings.topics.prefix}{topic}"


def create_topics(settings: Settings, timeout_s: float = 30.0) -> dict[str, str]:
    """Create missing topics; existing ones are left as they are. Returns name -> 'created'|'exists'.

    A refused login raises ``KafkaAuthenticationError`` naming the cause.
    """
    check_connection(settings.kafka, timeout_s=timeout_s)
    admin = AdminClient(common_config(settings.kafka))
    specs = topic_specs(settings)
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=settings.topics.replication_factor,
                 config=s.config)
        for s in specs
    ]
    result: dict[str, str] = {}
    for topic, future in admin.create_topics(new, request_timeout=timeout_s).items():
        try:
            future.result()
            result[topic] = "created"
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
            result[topic] = "exists"
    log.info("topics: %s", result)
    return result


def delete_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Delete every topic named with ``topics.prefix`` (faust's changelogs included); returns them.

    For runs that own their prefix (the demo, tests), so a broker that outlives them does
    not pile up partitions run after run.
    """
    admin = AdminClient(common_config(settings.kafka))
    ours = sorted(t for t in admin.list_topics(timeout=timeout_s).topics if t.startswith(settings.topics.prefix))
    for future in admin.delete_topics(ours, request_timeout=timeout_s).values() if ours else ():
        future.result()
    return ours

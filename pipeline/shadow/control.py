"""The compacted ``model-control`` topic: read the assignment, change it, follow it live.

One partition, one key (``assignment``): the latest value is the whole assignment, so a
reader takes the last message up to the high watermark. Every change is also written to
ClickHouse ``model_audit`` (who, when, what); a failed audit insert is logged, never
blocks the change (the topic itself keeps who/when/what of the latest revision).

Changes are optimistic read-modify-write on the log: each writes ``revision + 1`` of what it
read, and the first record of a revision in log order wins (``supersedes``): a record whose
revision is not above the one applied before it was based on a stale read and is ignored
by every reader. ``change`` reads back where its record landed; if another change won that
revision, it applies its function again to the winner and writes the next revision, so two
operators changing at the same instant both get their change, in some order, and only
applied revisions are audited. Automatic rollbacks are idempotent
(``assignment.rollback(failed=...)``), so several workers reporting one broken version roll
back once. (If a writer dies between losing and re-applying, its stale record stays last
on the topic until the next change: log compaction could then keep it over the winner.)
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from pipeline.codec import ALERT, default_codec
from pipeline.config import Settings
from pipeline.exceptions import ServiceUnavailableError
from pipeline.kafka import topics
from pipeline.kafka.clients import common_config, producer_config
from pipeline.shadow.assignment import MODEL_ASSIGNMENT, Assignment, from_record, to_record

log = logging.getLogger(__name__)

KEY = b"assignment"
_NO_LEADER_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._TIMED_OUT}
_POLL_S = 0.2


def now_ms() -> int:
    return int(time.time() * 1000)


def _reader(settings: Settings) -> tuple[Consumer, TopicPartition]:
    conf = common_config(settings.kafka) | {
        "group.id": f"camcount-model-control-{uuid.uuid4().hex[:8]}",  # never commits: assign() only
        "enable.auto.commit": False, "enable.partition.eof": True,
    }
    return Consumer(conf), TopicPartition(topics.name(settings, topics.MODEL_CONTROL), 0, OFFSET_BEGINNING)


def initial(settings: Settings) -> Assignment:
    """The assignment before anything was written: ``models.primary`` from the config."""
    return Assignment(settings.models.primary)


def supersedes(record: Assignment, current: Assignment | None) -> bool:
    """Whether ``record`` (read after ``current``) takes effect: first writer of a revision wins."""
    return current is None or record.revision > current.revision


def read_assignment(settings: Settings, timeout_s: float = 10.0) -> Assignment:
    """The assignment in effect on the topic, or ``initial`` when it is empty."""
    return _scan(settings, timeout_s)[0]


def _scan(settings: Settings, timeout_s: float, watch: int | None = None) -> tuple[Assignment, bool]:
    """Read the topic to its end: the assignment in effect, and whether the record at offset
    ``watch`` took effect (False for a stale write that lost its revision)."""
    consumer, tp = _reader(settings)
    codec = default_codec()
    latest: Assignment | None = None
    watched_won = False
    deadline = time.monotonic() + timeout_s
    try:
        low, high = _watermarks(consumer, tp, deadline)
        if high <= low:
            return initial(settings), False
        consumer.assign([tp])
        while time.monotonic() < deadline:
            msg = consumer.poll(_POLL_S)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == -191:  # _PARTITION_EOF: read up to the end
                    if latest is not None:
                        return latest, watched_won
                    continue
                raise ServiceUnavailableError(f"model-control: {msg.error()}")
            if msg.key() == KEY and msg.value() is not None:
                record = from_record(codec.decode_as(msg.value(), MODEL_ASSIGNMENT))
                if supersedes(record, latest):
                    latest = record
                    watched_won = watched_won or msg.offset() == watch
            if msg.offset() >= high - 1:
                return latest or initial(settings), watched_won
    finally:
        consumer.close()
    raise ServiceUnavailableError(f"model-control not read to its end in {timeout_s:.0f} s")


def _watermarks(consumer: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """The partition's offsets; a topic created a moment ago may have no leader yet: retry."""
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=max(0.1, deadline - time.monotonic()))
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in _NO_LEADER_YET) or time.monotonic() > deadline:
                raise ServiceUnavailableError(f"model-control: {exc}") from None
            time.sleep(0.2)


def _publish(settings: Settings, assignment: Assignment) -> int:
    """Write ``assignment`` and wait for the broker's ack; the offset it landed at."""
    landed: list[int] = []

    def delivered(err: KafkaError | None, msg) -> None:
        if err is None:
            landed.append(msg.offset())

    producer = Producer(producer_config(settings.kafka))
    producer.produce(topics.name(settings, topics.MODEL_CONTROL), key=KEY, on_delivery=delivered,
                     value=default_codec().encode(MODEL_ASSIGNMENT, to_record(assignment)))
    if producer.flush(30) != 0 or not landed:
        raise ServiceUnavailableError("model-control: the change was not acknowledged in 30 s")
    return landed[0]


#: How often ``change`` re-applies itself after losing a revision to a concurrent change.
MAX_ATTEMPTS = 5


def change(settings: Settings, fn: Callable[[Assignment], Assignment]) -> tuple[Assignment, Assignment]:
    """Read the assignment, apply ``fn``, write the result if it differs and make sure it took
    effect (re-applied to a concurrent winner if not), then audit it; (before, after)."""
    before = read_assignment(settings)
    for _ in range(MAX_ATTEMPTS):
        after = fn(before)
        if after is before:
            return before, after
        offset = _publish(settings, after)
        current, won = _scan(settings, 30.0, watch=offset)
        if won:
            log.info("model-control revision %d: %s by %s (%s) -> primary %s", after.revision,
                     after.action, after.changed_by, after.reason, after.primary)
            audit(settings, after, before)
            return before, after
        log.info("model-control revision %d was taken by a concurrent change (%s by %s); re-applying",
                 after.revision, current.action, current.changed_by)
        before = current
    raise ServiceUnavailableError(f"model-control: still racing other changes after {MAX_ATTEMPTS} attempts")


def audit_row(assignment: Assignment, previous: Assignment | None) -> tuple:
    ts_ms = assignment.changed_at_ms
    return (ts_ms, ts_ms // 1000, assignment.revision, assignment.action, assignment.changed_by, assignment.subject,
            assignment.primary, previous.primary if previous else "", assignment.reason,
            json.dumps(to_record(assignment), sort_keys=True))


AUDIT_COLUMNS = ("ts_ms", "ts", "revision", "action", "changed_by", "model", "primary_model",
                 "previous_primary", "reason", "assignment")


def audit(settings: Settings, assignment: Assignment, previous: Assignment | None) -> bool:
    """Insert the change into ``model_audit``; False (logged) when ClickHouse refused."""
    from pipeline.sinks.clickhouse import TRANSIENT_ERRORS, make_client

    row = audit_row(assignment, previous)
    try:
        client = make_client(settings.clickhouse)
        if client.execute("SELECT toTypeName(ts) FROM model_audit LIMIT 0", with_column_types=True)[1][0][1] \
                .startswith("DateTime64"):
            row = row[:1] + (row[0],) + row[2:]  # DateTime64(3) takes ms
        client.execute(f"INSERT INTO model_audit ({', '.join(AUDIT_COLUMNS)}) VALUES", [row])
        return True
    except TRANSIENT_ERRORS as exc:
        log.error("model_audit insert of revision %d failed: %s", assignment.revision, exc)
        return False


def publish_alert(settings: Settings, alert_id: str, message: str, value: float | None = None,
                  threshold: float | None = None) -> None:
    """A firing ``model_failover`` Alert on the alerts topic (best effort, logged on failure)."""
    record = dict(alert_id=alert_id, rule="model_failover", kind="inference_errors", camera_id=None,
                  severity="critical", state="firing", message=message, value=value, threshold=threshold,
                  ts_ms=now_ms())
    producer = Producer(producer_config(settings.kafka))
    producer.produce(topics.name(settings, topics.ALERTS), key=alert_id.encode(),
                     value=default_codec().encode(ALERT, record))
    if producer.flush(10) != 0:
        log.error("alert %s not acknowledged: %s", alert_id, message)


class ControlFollower:
    """A thread reading ``model-control`` from the start, calling ``on_change`` with each new
    assignment (the initial one first, once the topic was read to its end)."""

    def __init__(self, settings: Settings, on_change: Callable[[Assignment], None]) -> None:
        self._settings = settings
        self._on_change = on_change
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-control", daemon=True)
        self.current: Assignment | None = None

    def start(self, wait_s: float = 10.0) -> "ControlFollower":
        self._thread.start()
        if not self._ready.wait(wait_s):
            log.warning("model-control not read to its end in %.0f s; serving the configured primary", wait_s)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        consumer, tp = _reader(self._settings)
        codec = default_codec()
        latest: Assignment | None = None  # in effect so far (stale writes skipped)
        try:
            consumer.assign([tp])
            while not self._stop.is_set():
                msg = consumer.poll(_POLL_S)
                if msg is None:
                    continue
                if msg.error() is not None:
                    if msg.error().code() == -191:  # at the end: hand over what is in effect
                        self._deliver(latest or initial(self._settings))
                    else:
                        log.warning("model-control: %s", msg.error())
                    continue
                if msg.key() == KEY and msg.value() is not None:
                    record = from_record(codec.decode_as(msg.value(), MODEL_ASSIGNMENT))
                    if supersedes(record, latest):
                        latest = record
                        if self._ready.is_set():
                            self._deliver(latest)
        except Exception:  # noqa: BLE001 - the follower must never take the worker down
            log.exception("model-control follower stopped; the worker keeps its current model")
        finally:
            consumer.close()

    def _deliver(self, assignment: Assignment) -> None:
        if self.current is None or assignment.revision != self.current.revision or not self._ready.is_set():
            self.current = assignment
            try:
                self._on_change(assignment)
            except Exception:  # noqa: BLE001
                log.exception("applying model-control revision %d failed", assignment.revision)
        self._ready.set()

"""The alerter as a faust-streaming app: counts, occupancy, heartbeats (and comparisons) -> ``alerts``.

The only module of the package that imports faust. One agent reads ``count-events``
(``OccupancySample``, ``Heartbeat``), ``counts`` (``WindowCount``) and, when configured, the
comparisons topic; the pure rules in ``rules.py`` turn each record into checks and
``state.advance`` into firing/resolved transitions. Alerts are published, acknowledged by
the broker, and only then is the condition state written to the changelog table, as the
aggregator does: a lost state write means the alert is published again on replay (same
``alert_id``, state and ``ts_ms``), never that it is lost.

Two timers judge what no record can: silence (wall clock since the last heartbeat was
*received*; a silent camera's event time stands still) and the inference stats read from
ClickHouse ``inference_stats``. A timer has no current event, so it writes the changelog
explicitly, to the partition its key belongs to (the camera's heartbeat partition; 0 for
per-model conditions), and only for partitions this worker owns.

Table keys: ``cam/<camera_id>`` -> ``{"seen_ms": wall ms or None once ended, "partition": p}``;
``cond/<alert_id>`` -> the condition's ``state.ConditionState`` (idle ones are deleted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, Awaitable, Iterable, Mapping

import faust

from pipeline.alerts.config import InferenceRule, SilenceRule
from pipeline.alerts.rules import (
    Check,
    alert_value,
    count_checks,
    disagreement_checks,
    inference_checks,
    occupancy_checks,
    silence_checks,
)
from pipeline.alerts.state import advance, is_idle
from pipeline.codec import (
    ALERT,
    COUNT_EVENT,
    HEARTBEAT,
    MODEL_COMPARISON,
    OCCUPANCY_SAMPLE,
    WINDOW_COUNT,
    WINDOW_OCCUPANCY,
    Codec,
    default_codec,
)
from pipeline.config import Settings
from pipeline.exceptions import DecodeError
from pipeline.kafka.faust_app import durable_agent, make_app, raw_topic
from pipeline.kafka.headers import dlq_headers
from pipeline.kafka.topics import ALERTS, COUNT_EVENTS, COUNTS, dlq, name

log = logging.getLogger(__name__)

TABLE_NAME = "alert-state"
INPUT_RECORDS = (OCCUPANCY_SAMPLE, HEARTBEAT, COUNT_EVENT, WINDOW_COUNT, WINDOW_OCCUPANCY, MODEL_COMPARISON)
#: A heartbeat refreshes the stored "last received" time at most this often (fewer changelog writes).
SEEN_RESOLUTION_MS = 1_000
STATS_INTERVAL_S = 30.0

INFERENCE_SQL = """
SELECT model_name, model_version, sum(frames) AS frames, sum(errors) AS errors,
       max(inference_ms_p95) AS inference_ms_p95
FROM {db}.inference_stats WHERE ts_ms >= %(since_ms)s
GROUP BY model_name, model_version
"""


def wall_ms() -> int:
    return int(time.time() * 1000)


class Alerter:
    """The faust app, its agent and timers; ``run()`` blocks until the worker stops."""

    def __init__(self, settings: Settings, codec: Codec | None = None) -> None:
        cfg = settings.alerts
        self.settings, self.rules = settings, list(cfg.rules)
        self._silence_rules = [r for r in self.rules if isinstance(r, SilenceRule)]
        self.codec = codec or default_codec()
        self.stats: Counter[str] = Counter()
        self.started_ms = wall_ms()
        self.app = make_app(settings, cfg.app_id)
        self.app.conf.broker_commit_interval = cfg.commit_interval_ms / 1000
        self.heartbeats_topic = name(settings, COUNT_EVENTS)
        inputs = [self.heartbeats_topic, name(settings, COUNTS)]
        if cfg.comparisons_topic:
            inputs.append(name(settings, cfg.comparisons_topic))
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.source = self.app.topic(*inputs, **raw)
        self.alerts = raw_topic(self.app, name(settings, ALERTS))
        self.dead_letters = {t: raw_topic(self.app, dlq(t)) for t in inputs}
        self.table = self.app.Table(TABLE_NAME, default=None,
                                    schema=faust.Schema(key_serializer="json", value_serializer="json"),
                                    help="Alert condition states and when each camera was last heard from.")
        self.app.agent(self.source, name="alert")(durable_agent("alerter", self.handle))
        self.app.timer(cfg.silence_check_interval_ms / 1000)(self._silence_tick)
        if any(isinstance(r, InferenceRule) for r in self.rules):
            self.app.timer(cfg.inference_poll_interval_ms / 1000)(self._inference_tick)
        self.app.timer(STATS_INTERVAL_S)(self._log_stats)

    # -- the stream ---------------------------------------------------------------------

    async def handle(self, event: Any) -> list[Awaitable[Any]]:
        """One input record: decode, judge, publish transitions; returns what it published
        (``durable_agent`` persists the state once those are acknowledged)."""
        msg = event.message
        try:
            record, value = self.codec.decode(event.value, expect=INPUT_RECORDS)
        except DecodeError as exc:
            return [await self._dead_letter(event, exc)]
        self.stats[record.rsplit(".", 1)[-1]] += 1
        if record == OCCUPANCY_SAMPLE:
            return await self.apply(occupancy_checks(self.rules, value))
        if record == WINDOW_COUNT:
            return await self.apply(count_checks(self.rules, value))
        if record == MODEL_COMPARISON:
            return await self.apply(disagreement_checks(self.rules, value))
        if record == HEARTBEAT:
            return await self._heartbeat(value, msg.partition)
        return []

    async def _heartbeat(self, value: Mapping[str, Any], partition: int) -> list[Awaitable[Any]]:
        """Note when the camera was heard from (wall clock); a frame resolves its silence at once."""
        camera, now_ms = value["camera_id"], wall_ms()
        key = f"cam/{camera}"
        seen_ms = None if value["end_of_stream"] else now_ms
        entry = self.table.get(key)
        published = await self.apply(silence_checks(self.rules, {camera: now_ms}, now_ms, self.started_ms))
        if (entry is None or seen_ms is None or entry["seen_ms"] is None
                or seen_ms - entry["seen_ms"] >= SEEN_RESOLUTION_MS or entry["partition"] != partition):
            if entry != {"seen_ms": seen_ms, "partition": partition}:
                self.table[key] = {"seen_ms": seen_ms, "partition": partition}
        return published

    async def _dead_letter(self, event: Any, exc: DecodeError) -> Awaitable[Any]:
        msg = event.message
        self.stats[f"dlq.{exc.reason}"] += 1
        log.warning("%s[%d]@%d to the DLQ: %s", msg.topic, msg.partition, msg.offset, exc)
        original = msg.headers.items() if isinstance(msg.headers, Mapping) else msg.headers or ()
        headers = dlq_headers(list(original), msg.topic, msg.partition, msg.offset, exc.reason, str(exc))
        headers.append(("dlq.consumer", self.app.conf.id.encode()))
        return await self.dead_letters[msg.topic].send(key=event.key, value=event.value, headers=headers)

    # -- conditions -----------------------------------------------------------------------

    async def apply(self, checks: Iterable[Check], partition: int | None = None) -> list[Awaitable[Any]]:
        """Advance each check's condition, publish the transitions, persist the new states after them.

        Inside the agent (``partition`` None) returns the publications: ``durable_agent``
        holds the table's changelog writes until they are acknowledged, and the agent goes on
        meanwhile. A timer has no current event (``partition`` picks the changelog's): it
        waits for the acknowledgements itself, then writes.
        """
        writes: dict[str, Any] = {}
        pending = []
        for check in checks:
            key = f"cond/{check.alert_id}"
            old = writes[key] if key in writes else self.table.get(key)
            new, transition = advance(old, check.breached, check.ts_ms, check.hold_ms)
            if transition is not None:
                alert = alert_value(check, transition)
                log.info("alert %s: %s", transition, alert["message"])
                self.stats[f"alerts.{transition}"] += 1
                pending.append(await self.alerts.send(key=(check.camera_id or check.rule.name).encode(),
                                                      value=self.codec.encode(ALERT, alert)))
            if new is not old:
                writes[key] = None if is_idle(new) else new
        if partition is not None and pending:
            await asyncio.gather(*pending)  # acknowledged by the broker before the state moves on
        for key, value in writes.items():
            self._put(key, value, partition)
        return pending if partition is None else []

    def _put(self, key: str, value: Any, partition: int | None) -> None:
        if partition is None:
            if value is not None:
                self.table[key] = value
            elif key in self.table:
                del self.table[key]
            return
        # From a timer: faust's table needs a current event to pick the changelog partition.
        if value is None:
            if self.table.data.pop(key, None) is not None:
                self.table.send_changelog(partition, key, None, value_serializer="raw")
            return
        self.table.data[key] = value
        self.table.send_changelog(partition, key, value)

    # -- timers ---------------------------------------------------------------------------

    def _owned_partitions(self) -> set[int]:
        """Partitions of ``count-events`` (and so of the table) this worker holds, once restored."""
        if not self.app.tables.recovery.completed.is_set():
            return set()
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == self.heartbeats_topic}

    async def _silence_tick(self) -> None:
        """Judge every owned camera's silence, with the state in that camera's partition.

        Configured cameras never heard from have no partition yet: partition 0's worker
        judges them (their condition resolves on the camera's first heartbeat).
        """
        owned = self._owned_partitions()
        if not owned or not self._silence_rules:
            return
        now_ms = wall_ms()
        by_partition: dict[int, dict[str, int | None]] = {}
        known = set()
        for key, entry in list(self.table.data.items()):
            if key.startswith("cam/"):
                known.add(key[4:])
                if entry["partition"] in owned:
                    by_partition.setdefault(entry["partition"], {})[key[4:]] = entry["seen_ms"]
        bare = [r.model_copy(update={"cameras": []}) for r in self._silence_rules]
        for partition, seen in sorted(by_partition.items()):
            await self.apply(silence_checks(bare, seen, now_ms, self.started_ms), partition)
        if 0 in owned:
            unseen = [r.model_copy(update={"cameras": sorted(set(r.cameras) - known)}) for r in self._silence_rules]
            await self.apply(silence_checks(unseen, {}, now_ms, self.started_ms), 0)

    async def _inference_tick(self) -> None:
        if 0 not in self._owned_partitions():
            return  # per-model conditions are judged by the worker holding partition 0
        now_ms = wall_ms()
        loop = asyncio.get_running_loop()
        for rule in self.rules:
            if isinstance(rule, InferenceRule):
                try:
                    rows = await loop.run_in_executor(None, self._read_inference_stats, now_ms - rule.window_ms)
                except Exception as exc:  # noqa: BLE001 - ClickHouse down: judge nothing this time
                    self.stats["inference_stats.unavailable"] += 1
                    log.warning("inference_stats not readable, inference rules not checked: %s", exc)
                    return
                await self.apply(inference_checks([rule], rows, now_ms), 0)

    def _read_inference_stats(self, since_ms: int) -> list[dict[str, Any]]:
        from pipeline.sinks.clickhouse import make_client

        client = make_client(self.settings.clickhouse)
        try:
            sql = INFERENCE_SQL.format(db=self.settings.clickhouse.database)
            rows = client.execute(sql, {"since_ms": since_ms})
        finally:
            client.disconnect()
        cols = ("model_name", "model_version", "frames", "errors", "inference_ms_p95")
        return [dict(zip(cols, row)) for row in rows]

    async def _log_stats(self) -> None:
        if self.stats:
            log.info("alerter: %s", dict(sorted(self.stats.items())))


def main(settings: Settings, health_port: int | None = None) -> int:
    """Entry point of ``camcount alerter``."""
    from pipeline.kafka.faust_app import serve

    alerter = Alerter(settings)
    return serve(settings, "alerter", alerter.app, health_port,
                 lambda: log.info("alerter stopped: %s", dict(sorted(alerter.stats.items()))))

"""Run the whole pipeline on one machine as worker subprocesses, the way an operator would.

``LocalPipeline`` starts ``camcount infer``, ``counter``, ``aggregate`` and ``sink`` (each its
own process, as in production), then ``camcount ingest`` on file sources, waits until
every window of the run is final in ClickHouse, and stops what it started. The demo and
the end-to-end tests both use it.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pipeline.config import Settings
from pipeline.kafka import topics
from pipeline.kafka.clients import consumer_config
from pipeline.exceptions import CamcountError
from pipeline.sinks.clickhouse import make_client

log = logging.getLogger(__name__)

WORKERS = ("infer", "counter", "aggregate", "sink")


def write_config(settings: Settings, path: Path) -> Path:
    """``settings`` as a YAML file the worker processes load (secrets included: keep it private)."""
    raw = settings.model_dump(mode="json", exclude_none=True)
    if settings.kafka.sasl_password is not None:
        raw["kafka"]["sasl_password"] = settings.kafka.sasl_password.get_secret_value()
    raw["clickhouse"]["password"] = settings.clickhouse.password.get_secret_value()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)  # before the secrets go in, not after
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class LocalPipeline:
    settings: Settings
    workdir: Path
    progress: Callable[[str], None] = lambda message: None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.workdir / "camcount.yaml"

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "-c", str(self.config_path), *args],
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_workers(self) -> None:
        write_config(self.settings, self.config_path)
        for name in WORKERS:
            self._spawn(name, name)
        self.progress(f"started {', '.join(WORKERS)} (logs in {self.workdir})")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if name != "ingest" and proc.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise CamcountError(f"worker {name} exited with {proc.returncode}:\n{tail}")

    def restart(self, name: str) -> None:
        """Kill a worker with SIGKILL (a crash, no clean shutdown) and start it again."""
        proc = self.procs[name]
        proc.kill()
        proc.wait(30)
        self._spawn(name, name)
        self.progress(f"killed and restarted {name}")

    def ingest(self, start_ms: int, timeout_s: float,
               while_running: Callable[[], None] = lambda: None) -> None:
        """Stream every (file) camera once from ``start_ms`` and wait until ingest ends.

        ``while_running`` is called about once a second meanwhile (tests inject faults there).
        """
        proc = self._spawn("ingest", "ingest", "--start-ms", str(start_ms))
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None:
            self.check_alive()
            if time.monotonic() > deadline:
                raise CamcountError(f"ingest did not finish in {timeout_s:.0f}s")
            while_running()
            time.sleep(1)
        if proc.returncode != 0:
            tail = (self.workdir / "ingest.log").read_text(errors="replace")[-2000:]
            raise CamcountError(f"ingest exited with {proc.returncode}:\n{tail}")

    def inputs(self, worker: str | None = None) -> list[tuple[str, str]]:
        """``(consumer group, input topic)`` pairs of one worker (default: of all of them)."""
        s = self.settings
        pairs = {"infer": [(s.inference.group_id, topics.FRAMES)],
                 "counter": [("camcount-counter", topics.DETECTIONS)],
                 "aggregate": [(s.aggregation.app_id, topics.COUNT_EVENTS)],
                 "sink": [(s.sink.group_id, topics.COUNTS), (s.sink.group_id, topics.COUNT_EVENTS)]}
        return [pair for name in ([worker] if worker else WORKERS) for pair in pairs[name]]

    def offsets(self, worker: str | None = None) -> dict[tuple[str, str, int], tuple[int, int]] | None:
        """``(group, topic, partition) -> (committed, end offset)`` of the workers' inputs
        (None when the broker could not say just now: down, a leader moving, a rebalance)."""
        s, out = self.settings, {}
        for group, topic in self.inputs(worker):
            consumer = Consumer(consumer_config(s.kafka, topics.name(s, group), **{"enable.auto.commit": False}))
            try:
                name = topics.name(s, topic)
                parts = [TopicPartition(name, p) for p in consumer.list_topics(name, timeout=10).topics[name].partitions]
                for tp in consumer.committed(parts, timeout=10):
                    high = consumer.get_watermark_offsets(tp, timeout=10)[1]
                    out[(group, topic, tp.partition)] = (max(tp.offset, 0), high)
            except KafkaException as exc:
                log.info("offsets of %s unknown for now: %s", group, exc)
                return None
            finally:
                consumer.close()
        return out

    def consumer_lag(self) -> int | None:
        """Messages not yet committed by the workers' consumer groups, over all their inputs
        (None when the broker could not say just now: a leader moving, a rebalance)."""
        offsets = self.offsets()
        return None if offsets is None else sum(high - done for done, high in offsets.values())

    def wait_drained(self, timeout_s: float) -> None:
        """Wait until every worker has committed everything on its input topics (checked twice)."""
        deadline, quiet = time.monotonic() + timeout_s, 0
        while time.monotonic() < deadline:
            self.check_alive()
            lag = self.consumer_lag()
            quiet = quiet + 1 if lag == 0 else 0
            if quiet >= 2:
                return
            if lag:
                self.progress(f"pipeline backlog: {lag} messages")
            time.sleep(2)
        raise CamcountError(f"the workers did not drain their topics in {timeout_s:.0f}s")

    def wait_final(self, cameras: list[str], since_ms: int, timeout_s: float, settle_s: float = 3.0) -> None:
        """Wait until ClickHouse holds only final windows for ``cameras`` and nothing changes for a while."""
        client = make_client(self.settings.clickhouse)
        sql = ("SELECT count(), countIf(final = 0), sum(version), max(inserted_at) FROM counts FINAL "
               "WHERE camera_id IN %(cams)s AND window_start >= toDateTime(%(since)s)")
        deadline, last, stable_since = time.monotonic() + timeout_s, None, time.monotonic()
        while time.monotonic() < deadline:
            self.check_alive()
            (rows, open_, versions, _), = client.execute(sql, {"cams": tuple(cameras), "since": since_ms // 1000})
            state = (rows, open_, versions)
            if state != last:
                last, stable_since = state, time.monotonic()
                self.progress(f"ClickHouse: {rows} window rows, {rows - open_} final")
            elif not open_ and time.monotonic() - stable_since >= settle_s:
                return
            time.sleep(1)
        raise CamcountError(f"windows were not final after {timeout_s:.0f}s (last: {last})")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                self.progress(f"{name} did not stop in 30s; killing it")
                proc.kill()
                proc.wait(10)


def per_minute_counts(settings: Settings, cameras: list[str], since_ms: int) -> list[tuple]:
    """``(window_start, camera, rule, class, direction, count)`` rows of the run, from ClickHouse."""
    return make_client(settings.clickhouse).execute(
        "SELECT window_start, camera_id, rule, class_name, direction, count FROM counts_latest "
        "WHERE camera_id IN %(cams)s AND window_start >= toDateTime(%(since)s) "
        "ORDER BY camera_id, window_start, rule, class_name, direction",
        {"cams": tuple(cameras), "since": since_ms // 1000})

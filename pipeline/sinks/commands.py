"""``camcount sink`` (Kafka -> ClickHouse) and ``camcount query counts`` (read it back)."""

from __future__ import annotations

import argparse
import signal
import threading
import time

from pipeline import telemetry
from pipeline.config import Settings


def _sink(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.sinks.clickhouse import wait_until_up
    from pipeline.sinks.clickhouse_writer import clickhouse_sink_runner

    wait_until_up(settings.clickhouse)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: flush, commit, close
        signal.signal(sig, lambda *_: stop.set())
    runner = clickhouse_sink_runner(settings)
    health = telemetry.start_worker(settings, "sink", runner.ready, getattr(args, "health_port", None))
    try:
        runner.run(stop)
    finally:
        if health is not None:
            health.stop()
    return 0


def _query_counts(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.sinks.clickhouse import make_client
    from pipeline.sinks.query import COUNT_COLUMNS, format_table, parse_time_ms, query_counts

    now_ms = int(time.time() * 1000)
    since_ms = parse_time_ms(args.since, now_ms)
    until_ms = parse_time_ms(args.until, now_ms) if args.until else now_ms + 86_400_000
    rows = query_counts(make_client(settings.clickhouse), settings.clickhouse.database, args.camera, since_ms,
                        until_ms, rule=args.rule)
    print(format_table(COUNT_COLUMNS, rows))
    print(f"({len(rows)} windows, {sum(r[4] for r in rows)} counted; window_start is UTC)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sink = sub.add_parser("sink", help="write counts, occupancy and count events from Kafka to ClickHouse")
    telemetry.add_health_option(sink)
    sink.set_defaults(handler=_sink)

    query = sub.add_parser("query", help="read results back from ClickHouse").add_subparsers(
        dest="what", required=True)
    counts = query.add_parser("counts", help="per-window counts of one camera (latest version of each window)")
    counts.add_argument("--camera", required=True, help="camera id")
    counts.add_argument("--since", default="1h", help="start: 30m, 2h, 1d ago, or an ISO time (UTC); default 1h")
    counts.add_argument("--until", help="end (exclusive), same forms; default: no end")
    counts.add_argument("--rule", help="only this rule")
    counts.set_defaults(handler=_query_counts)

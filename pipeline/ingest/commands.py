"""``camcount ingest``: stream the configured cameras into the ``frames`` topic."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from pipeline import telemetry
from pipeline.cli_types import positive_int
from pipeline.config import Settings

EXIT_OK, EXIT_FAILURE = 0, 1


def start_ms_arg(value: str) -> int:
    """``--start-ms``: epoch milliseconds, or ``now``."""
    if value == "now":
        return time.time_ns() // 1_000_000
    try:
        start_ms = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected epoch milliseconds or 'now', got {value!r}") from None
    if start_ms < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return start_ms


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="read cameras, RTSP/HTTP streams and files; send sampled JPEG frames to Kafka",
        description="Runs until SIGTERM/SIGINT (frames in flight are flushed) or until every file "
                    "source has ended. Prints each camera's counters as one JSON line on exit. "
                    "Exit status 1 if a camera failed or frames were not delivered.",
    )
    # SUPPRESS: without --config here, the top-level ``camcount --config`` value is kept.
    parser.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS, help="YAML config file")
    parser.add_argument("--camera", action="append", metavar="ID", dest="cameras",
                        help="serve only this camera (repeatable; default: every camera in the config)")
    parser.add_argument("--max-frames", type=positive_int, metavar="N",
                        help="stop each camera after N sampled frames")
    parser.add_argument("--start-ms", type=start_ms_arg, metavar="T",
                        help="capture time of each file's first frame, epoch ms or 'now' (default: "
                             "ingest.file_start_ms, else the file's mtime); same file + same T = same "
                             "capture_ts_ms and seq")
    telemetry.add_health_option(parser)
    parser.set_defaults(handler=run_ingest)


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM/SIGINT call ``stop`` (graceful); a second one exits at once."""

    def handler(signum: int, frame: object) -> None:
        print(f"camcount ingest: {signal.Signals(signum).name}, stopping (again to force)", file=sys.stderr)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.ingest.worker import IngestWorker

    worker = IngestWorker(settings, camera_ids=args.cameras, start_ms=args.start_ms, max_frames=args.max_frames)
    health = telemetry.start_worker(settings, "ingest", worker.ready, getattr(args, "health_port", None))
    try:
        with stop_on_signals(worker.stop):
            summary = worker.run()
    finally:
        if health is not None:
            health.stop()
    for snapshot in summary.values():
        print(json.dumps(snapshot, sort_keys=True))
    failed = any(s["state"] == "failed" or s["frames_failed"] for s in summary.values())
    return EXIT_FAILURE if failed else EXIT_OK

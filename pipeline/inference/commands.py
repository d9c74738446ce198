"""``camcount infer``: run one inference worker (one model, one consumer-group member).

SIGTERM or Ctrl-C finishes the frames in flight, flushes the producer, commits and exits 0.
The last line on stdout is a JSON object of the worker's totals (frames, dlq, paused, ...).
"""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path

from pipeline import telemetry
from pipeline.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    infer = subparsers.add_parser("infer", help="run an inference worker: frames -> detections")
    # Also accepted after the sub-command; SUPPRESS keeps a top-level -c/--config when absent.
    infer.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS,
                       help="YAML config file (same as the top-level option)")
    infer.add_argument("--model", metavar="NAME:VER",
                       help="registry model version to serve (default: models.primary)")
    infer.add_argument("--group", metavar="ID", help="consumer group (default: inference.group_id)")
    infer.add_argument("--max-frames", type=int, metavar="N",
                       help="stop after N frames are finished (detections or DLQ acknowledged)")
    infer.add_argument("--idle-exit-s", type=float, metavar="S",
                       help="stop once nothing arrived for S seconds and nothing is in flight")
    infer.add_argument("--role", choices=["primary", "shadow"], default="primary",
                       help="primary: frames -> detections, following model-control; shadow: a "
                            "candidate (--model) on frames.shadow -> detections.shadow")
    infer.add_argument("--static", action="store_true",
                       help="primary role: serve --model only, ignore model-control (no mirroring)")
    telemetry.add_health_option(infer)
    infer.set_defaults(handler=_infer)


def _infer(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.inference.build import build_worker

    built: list = []  # the worker, once its model is loaded: /livez answers during the load
    health = telemetry.start_worker(settings, f"infer-{args.role}", lambda: bool(built) and built[0].ready(),
                                    getattr(args, "health_port", None))
    try:
        worker = build_worker(settings, args.model, role=args.role, follow=not args.static, group_id=args.group,
                              max_frames=args.max_frames, idle_exit_s=args.idle_exit_s)
        built.append(worker)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: worker.stop())
        totals = worker.run()
    finally:
        if health is not None:
            health.stop()
    print(json.dumps(totals, sort_keys=True), flush=True)
    return 0

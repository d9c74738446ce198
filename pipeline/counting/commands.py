"""``camcount counter``: the counting stream processor (detections → count-events)."""

from __future__ import annotations

import argparse

from pipeline.config import Settings


def _counter(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.counting.app import build_app
    from pipeline.inference.registry import registry_from_settings
    from pipeline.kafka.faust_app import run_worker

    run_worker(build_app(settings, registry_from_settings(settings)), args.loglevel)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("counter", help="run the counter: track objects, apply line/zone rules, emit count events")
    p.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(handler=_counter)

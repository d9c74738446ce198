"""``camcount aggregate``: run the windowed aggregator (faust worker) until interrupted."""

from __future__ import annotations

import argparse

from pipeline import telemetry
from pipeline.config import Settings


def _aggregate(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.aggregation.app import main  # imports faust: only when the command runs

    return main(settings, getattr(args, "health_port", None))


def register(sub: argparse._SubParsersAction) -> None:
    agg = sub.add_parser("aggregate", help="count events per event-time window: count-events -> counts")
    telemetry.add_health_option(agg)
    agg.set_defaults(handler=_aggregate)

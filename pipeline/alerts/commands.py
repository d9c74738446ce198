"""``camcount alerter`` (run the rules until interrupted) and ``camcount alerts tail [--follow]``."""

from __future__ import annotations

import argparse
import sys

from pipeline import telemetry
from pipeline.config import Settings


def _alerter(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.alerts.app import main  # imports faust: only when the command runs

    return main(settings, getattr(args, "health_port", None))


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.alerts.tail import tail

    tail(settings, sys.stdout, follow=args.follow, from_beginning=not args.new)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    alerter = sub.add_parser("alerter", help="evaluate alerts.rules over counts, occupancy, heartbeats -> alerts")
    telemetry.add_health_option(alerter)
    alerter.set_defaults(handler=_alerter)

    alerts = sub.add_parser("alerts", help="alerts published on the alerts topic").add_subparsers(
        dest="action", required=True)
    t = alerts.add_parser("tail", help="print alerts, one line each (firing/resolved, severity, kind, camera)")
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new alerts until interrupted")
    t.add_argument("--new", action="store_true", help="only alerts published from now on (default: from the start)")
    t.set_defaults(handler=_tail)

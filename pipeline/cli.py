"""The ``camcount`` command line: one sub-command per part of the pipeline.

Exit codes scripts can rely on: 0 success, 1 runtime failure, 2 bad usage or config,
3 a service (Kafka, ClickHouse) did not answer.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path
from importlib import import_module
from typing import Callable

from pipeline import __version__, logs
from pipeline.config import REPO_ROOT, Settings, load_config
from pipeline.exceptions import CamcountError, ConfigError, ServiceUnavailableError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3

#: Parts of the pipeline that add their own sub-commands (each module has ``register(subparsers)``).
COMMAND_MODULES: list[str] = [
    "pipeline.counting.commands",
    "pipeline.inference.commands",
    "pipeline.ingest.commands",
    "pipeline.sinks.commands",
    "pipeline.aggregation.commands",
    "pipeline.serving.commands",
    "pipeline.shadow.commands",
    "pipeline.alerts.commands",
]

#: Long-running Kafka workers: with SASL configured they check the login once at start,
#: so a wrong password stops them with a clear error instead of retrying forever.
KAFKA_WORKERS = {"ingest", "infer", "counter", "aggregate", "sink", "alerter", "compare"}

Handler = Callable[[argparse.Namespace, Settings], int]


def _infra(args: argparse.Namespace, settings: Settings) -> int:
    script = REPO_ROOT / "infra" / f"{args.action}.sh"
    return subprocess.call(["bash", str(script)])


def _topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.kafka.topics import create_topics

    for topic, state in sorted(create_topics(settings).items()):
        print(f"{topic}\t{state}")
    return EXIT_OK


def _db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.sinks.clickhouse import make_client, wait_until_up
    from pipeline.sinks.migrations import migrate

    version = wait_until_up(settings.clickhouse, timeout_s=args.wait_s)
    applied = migrate(make_client(settings.clickhouse, database="default"), settings.clickhouse.database, version)
    server = ".".join(map(str, version))
    print(f"applied {', '.join(applied)}" if applied else "up to date", f"(ClickHouse {server})")
    return EXIT_OK


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.demo import run_demo

    return run_demo(settings, keep_running=args.keep_running)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="camcount", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"camcount {__version__}")
    parser.add_argument("-c", "--config", type=Path, help="YAML config file (default: built-in defaults + env)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    infra = sub.add_parser("infra", help="start or stop the local Kafka and ClickHouse (infra/*.sh)")
    infra.add_argument("action", choices=["up", "down"])
    infra.set_defaults(handler=_infra, needs_config=False)

    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(dest="action", required=True)
    create = topics.add_parser("create", help="create every topic camcount uses (existing ones are kept)")
    create.set_defaults(handler=_topics_create)

    db = sub.add_parser("db", help="ClickHouse schema").add_subparsers(dest="action", required=True)
    mig = db.add_parser("migrate", help="apply pending migrations from schemas/clickhouse/")
    mig.add_argument("--wait-s", type=float, default=30.0, help="how long to wait for the server (default 30)")
    mig.set_defaults(handler=_db_migrate)

    demo = sub.add_parser("demo", help="run the pipeline end to end on the sample clip and print the counts")
    demo.add_argument("--keep-running", action="store_true", help="leave Kafka and ClickHouse running afterwards")
    demo.set_defaults(handler=_demo)

    for module in COMMAND_MODULES:
        import_module(module).register(sub)
    return parser


def _check_login(settings: Settings) -> None:
    """Refuse to start with credentials the broker rejects; a broker not up yet is left to retries."""
    from pipeline.kafka.clients import check_connection

    try:
        check_connection(settings.kafka)
    except ServiceUnavailableError as exc:
        logging.getLogger(__name__).warning("%s; starting anyway, the worker retries", exc)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.verbose)
    try:
        settings = load_config(args.config)
        if args.command in KAFKA_WORKERS and settings.kafka.sasl_mechanism:
            _check_login(settings)
        return args.handler(args, settings)
    except ConfigError as exc:
        print(f"camcount: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ServiceUnavailableError as exc:
        print(f"camcount: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except CamcountError as exc:
        print(f"camcount: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

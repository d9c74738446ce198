"""Apply ``schemas/clickhouse/*.sql`` in order, once each, gated on the server's features.

Each file is rendered for the server it runs on (Debian's 18.16 lacks LowCardinality,
DateTime64 and TTL; current releases have them), split into statements and applied; the
file's name and the checksum of what was applied are recorded in ``schema_migrations``.
Statements use IF NOT EXISTS, so a run interrupted half-way can simply be run again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Protocol

from pipeline.exceptions import CamcountError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "schemas" / "clickhouse"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SqlRunner(Protocol):
    """What migrations need of a ClickHouse client (clickhouse-driver ``Client`` or chdb)."""

    def execute(self, query: str, params: dict | None = None) -> list: ...


@dataclass(frozen=True)
class Features:
    """Server features the DDL depends on, decided from the server version."""

    low_cardinality: bool
    datetime64: bool
    ttl: bool

    @classmethod
    def for_version(cls, version: tuple[int, ...]) -> "Features":
        return cls(low_cardinality=version >= (19, 9), datetime64=version >= (20, 1), ttl=version >= (19, 6))


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    path: Path

    def render(self, database: str, features: Features) -> list[str]:
        """The statements of this file for a server with ``features``."""
        lines = []
        for line in self.path.read_text().splitlines():
            if line.startswith("--@ttl "):
                if features.ttl:
                    lines.append(line[len("--@ttl "):])
            elif not line.lstrip().startswith("--"):
                lines.append(line)
        text = Template("\n".join(lines)).substitute(
            db=database,
            str_lc="LowCardinality(String)" if features.low_cardinality else "String",
            ts_ms="DateTime64(3, 'UTC')" if features.datetime64 else "DateTime('UTC')",
        )
        return [s.strip() for s in text.split(";") if s.strip()]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise CamcountError(f"{path}: migration files are named NNNN_snake_case.sql")
        found.append(Migration(int(m.group(1)), path.stem, path))
    numbers = [m.number for m in found]
    if len(set(numbers)) != len(numbers):
        raise CamcountError(f"{directory}: two migrations share a number")
    return found


def _checksum(statements: list[str]) -> str:
    return hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()


def migrate(client: SqlRunner, database: str, version: tuple[int, ...],
            directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database):
        raise CamcountError(f"clickhouse.database: {database!r} is not a plain identifier")
    features = Features.for_version(version)
    client.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.execute(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(number UInt32, name String, checksum String, applied_at DateTime DEFAULT now()) "
        "ENGINE = MergeTree() ORDER BY number"
    )
    applied = {
        row[0]: (row[1], row[2])
        for row in client.execute(f"SELECT number, name, checksum FROM {database}.schema_migrations")
    }
    done = []
    for mig in discover(directory):
        statements = mig.render(database, features)
        checksum = _checksum(statements)
        if mig.number in applied:
            if applied[mig.number][1] != checksum:
                log.warning("migration %s changed since it was applied; add a new migration instead", mig.name)
            continue
        for statement in statements:
            client.execute(statement)
        client.execute(
            f"INSERT INTO {database}.schema_migrations (number, name, checksum) VALUES",
            [(mig.number, mig.name, checksum)],
        )
        log.info("applied migration %s", mig.name)
        done.append(mig.name)
    return done

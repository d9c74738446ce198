"""Shared fixtures: paths to ../shared, and real Kafka / ClickHouse from infra/up.sh.

Integration tests never skip: a service that is not running is a test failure, with a
message saying how to start it. Each test gets its own topic prefix and database, so
tests don't see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import Settings, parse_settings, shared_dir
from pipeline.kafka.topics import create_topics, delete_topics
from pipeline.sinks.clickhouse import make_client, wait_until_up
from pipeline.sinks.migrations import migrate

START_HINT = "start the services with `bash infra/up.sh` (the test command does this)"


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not (path / "data" / "videos").is_dir():
        pytest.fail(f"shared folder not found at {path}; set CAMCOUNT_SHARED")
    return path


@pytest.fixture(scope="session")
def pets09(shared: Path) -> Path:
    return shared / "data" / "videos" / "pets09_s2l1_pedestrians.avi"


@pytest.fixture(scope="session")
def street_cars(shared: Path) -> Path:
    return shared / "data" / "videos" / "street_cars_approaching.mp4"


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Defaults plus CAMCOUNT_* env overrides: where the test services are."""
    return parse_settings({}, "<tests>")


@pytest.fixture(scope="session")
def kafka_up(base_settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient

    from pipeline.kafka.clients import common_config

    try:
        AdminClient(common_config(base_settings.kafka)).list_topics(timeout=10)
    except Exception as exc:  # noqa: BLE001 - any failure here means "not reachable"
        pytest.fail(f"Kafka at {base_settings.kafka.bootstrap_servers} is not reachable ({exc}); {START_HINT}")


@pytest.fixture(scope="session")
def clickhouse_version(base_settings: Settings) -> tuple[int, ...]:
    try:
        return wait_until_up(base_settings.clickhouse, timeout_s=10)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"{exc}; {START_HINT}")


def _unique() -> str:
    return uuid.uuid4().hex[:10]


def with_overrides(settings: Settings, **sections: dict) -> Settings:
    """A copy of ``settings`` with some keys of some sections replaced (validated again)."""
    raw = settings.model_dump(mode="python")
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    raw["kafka"]["sasl_password"] = settings.kafka.sasl_password
    raw["clickhouse"]["password"] = settings.clickhouse.password
    return Settings.model_validate(raw)


@pytest.fixture
def kafka_settings(base_settings: Settings, kafka_up: None) -> Iterator[Settings]:
    """Settings with a topic prefix of this test's own, all topics created (and deleted after the
    test, with those the test's workers made: a developer's broker keeps its state between runs)."""
    settings = with_overrides(base_settings, topics={"prefix": f"t{_unique()}.", "partitions": 2})
    create_topics(settings)
    yield settings
    delete_topics(settings)


@pytest.fixture
def ch_settings(base_settings: Settings, clickhouse_version: tuple[int, ...]) -> Settings:
    """Settings with a freshly migrated database of this test's own (dropped afterwards)."""
    settings = with_overrides(base_settings, clickhouse={"database": f"test_{_unique()}"})
    client = make_client(settings.clickhouse, database="default")
    migrate(client, settings.clickhouse.database, clickhouse_version)
    yield settings
    client.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse.database}")


@pytest.fixture
def settings(kafka_settings: Settings, ch_settings: Settings) -> Settings:
    """Both: own topics and own database."""
    return with_overrides(kafka_settings, clickhouse=ch_settings.clickhouse.model_dump())

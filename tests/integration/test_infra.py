"""infra/up.sh and infra/down.sh on a private state folder and ports: idempotent start, clean stop."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pipeline.config import REPO_ROOT


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO_ROOT / "infra" / script)], env=env, capture_output=True,
                          text=True, timeout=180)


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and b"zombie" not in Path(f"/proc/{pid}/status").read_bytes().lower()


def test_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path) -> None:
    env = os.environ | {
        "CAMCOUNT_STATE_DIR": str(tmp_path / "state"),
        "CAMCOUNT_KAFKA_PORT": "29092", "CAMCOUNT_KAFKA_CONTROLLER_PORT": "29093",
        "CAMCOUNT_CLICKHOUSE_TCP_PORT": "29000", "CAMCOUNT_CLICKHOUSE_HTTP_PORT": "28123",
        "CAMCOUNT_KAFKA_HEAP": "-Xmx384m",
    }
    first = _run("up.sh", env)
    try:
        assert first.returncode == 0, first.stderr
        assert "Kafka: ready at 127.0.0.1:29092" in first.stderr
        assert "ClickHouse: ready at 127.0.0.1:29000" in first.stderr
        assert "log:" in first.stderr  # says where the logs are
        pids = [int((tmp_path / "state" / "run" / f).read_text()) for f in ("kafka.pid", "clickhouse.pid")]
        assert all(_pid_alive(p) for p in pids)

        second = _run("up.sh", env)
        assert second.returncode == 0, second.stderr
        assert "Kafka: already running" in second.stderr and "ClickHouse: already running" in second.stderr
    finally:
        down = _run("down.sh", env)
    assert down.returncode == 0, down.stderr
    assert not any(_pid_alive(p) for p in pids)
    assert not list((tmp_path / "state" / "run").glob("*.pid"))
    # The shared services other tests use are untouched.
    assert "Kafka: stopped" in down.stderr and "ClickHouse: stopped" in down.stderr


def test_a_service_that_cannot_start_is_named(tmp_path: Path, base_settings, clickhouse_version) -> None:
    taken = str(base_settings.clickhouse.port)  # the running test ClickHouse holds it
    env = os.environ | {"CAMCOUNT_STATE_DIR": str(tmp_path / "state"), "CAMCOUNT_KAFKA_PORT": taken}
    result = _run("up.sh", env)
    assert result.returncode != 0
    assert f"Kafka: port {taken} is taken" in result.stderr

"""The camcount console script: exit codes that scripts rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline.config import Settings


def camcount(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_help_lists_the_commands() -> None:
    result = camcount("--help")
    assert result.returncode == 0
    for command in ("infra", "topics", "db", "demo"):
        assert command in result.stdout


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "camcount.yaml"
    cfg.write_text("clickhouse:\n  prot: 9000\n")
    result = camcount("-c", str(cfg), "db", "migrate")
    assert result.returncode == 2
    assert "clickhouse.prot: unknown key" in result.stderr and str(cfg) in result.stderr


def test_db_migrate_twice(ch_settings: Settings, tmp_path: Path) -> None:
    cfg = tmp_path / "camcount.yaml"
    cfg.write_text(f"clickhouse:\n  database: {ch_settings.clickhouse.database}\n")
    result = camcount("-c", str(cfg), "db", "migrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("up to date")


def test_unreachable_clickhouse_exits_3(tmp_path: Path) -> None:
    cfg = tmp_path / "camcount.yaml"
    cfg.write_text("clickhouse:\n  connect_timeout_s: 0.2\n")
    env = os.environ | {"CAMCOUNT_CLICKHOUSE_PORT": "1"}  # the env override wins over the file
    result = camcount("-c", str(cfg), "db", "migrate", "--wait-s", "1", env=env)
    assert result.returncode == 3, result.stderr
    assert "did not answer" in result.stderr

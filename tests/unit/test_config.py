"""Config loading: defaults, env overrides, and errors that name the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT, load_config, parse_settings
from pipeline.exceptions import ConfigError


def test_defaults_without_a_file() -> None:
    s = load_config(None, environ={})
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.clickhouse.port == 9000 and s.cameras == []


def test_example_config_is_valid() -> None:
    s = load_config(REPO_ROOT / "config" / "example.yaml", environ={})
    assert s.cameras and all(c.rules for c in s.cameras)


def test_env_overrides_connection_settings() -> None:
    env = {"CAMCOUNT_KAFKA_BOOTSTRAP_SERVERS": "k:1", "CAMCOUNT_CLICKHOUSE_PORT": "9440",
           "CAMCOUNT_CLICKHOUSE_PASSWORD": "s3cret"}
    s = parse_settings({"kafka": {"bootstrap_servers": "file:1"}}, environ=env)
    assert s.kafka.bootstrap_servers == "k:1" and s.clickhouse.port == 9440
    assert "s3cret" not in repr(s)  # secrets never show up in logs or reprs
    assert s.clickhouse.password.get_secret_value() == "s3cret"


CAMERA = {"id": "c1", "source": "x.mp4", "resolution": [640, 480]}


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"kafka": {"bootstrap": "x"}}, "kafka.bootstrap: unknown key"),  # typo
        ({"clickhouse": {"port": "many"}}, "clickhouse.port: Input should be a valid integer"),
        ({"cameras": [CAMERA | {"fps": 0}]}, "cameras[0].fps: Input should be greater than 0"),
        ({"cameras": [CAMERA, CAMERA]}, "duplicate camera ids: c1"),
        ({"cameras": [CAMERA | {"rules": [{"type": "circle"}]}]}, "cameras[0].rules[0]"),
        ({"cameras": [CAMERA | {"rules": [{"type": "line", "name": "l", "points": [[0, 0]]}]}]},
         "cameras[0].rules[0].points"),
        ({"cameras": [{"id": "c", "source": "x", "rules": [
            {"type": "line", "name": "l", "points": [[320, 0], [320, 576]]}]}]}, "set 'resolution"),
        ([1, 2], "expected a mapping"),
        # spliced into SQL as a name, so only a plain identifier is accepted
        ({"clickhouse": {"database": "camcount; DROP TABLE counts"}}, "clickhouse.database: String should match"),
        ({"models": {"primary": "yolox-nano"}}, "models.primary: Value error, must be NAME:VERSION"),
    ],
)
def test_bad_values_name_the_key(raw, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_settings(raw, "cfg.yaml", environ={})
    assert message in str(exc.value)
    assert "cfg.yaml" in str(exc.value)


def test_bad_yaml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="nope.yaml: cannot read"):
        load_config(tmp_path / "nope.yaml")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("kafka: {client_id: caf\u00e9}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml: not UTF-8 text"):
        load_config(latin1)

"""Kafka over SASL_SSL for real: a private broker with a TLS listener and SCRAM users.

The test makes its own CA and broker certificate (openssl CLI), starts a broker on its own
state folder and ports with ``infra/up.sh kafka`` and the SASL_SSL settings, and runs
ingest -> inference -> counter through that listener only. A wrong password is refused
with a message that names the cause, and no log or repr carries the password.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from pipeline.codec import DETECTIONS, HEARTBEAT, default_codec
from pipeline.config import REPO_ROOT, Settings, parse_settings
from pipeline.exceptions import KafkaAuthenticationError
from pipeline.ingest.worker import IngestWorker
from pipeline.kafka import topics
from pipeline.kafka.clients import check_connection, common_config
from tests.kafka_helpers import consume, produce, start_worker, write_config

USER = "camcount"
MECHANISM = "SCRAM-SHA-256"
FRAMES = 20


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _make_certificates(folder: Path) -> None:
    """A self-signed CA (ca.pem) and a broker key + chain for 127.0.0.1 (broker.pem, PKCS#8)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        ["openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
         "-subj", "/CN=camcount test CA"],
        ["openssl", "req", *ec, "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "1", "-extfile", "san.ext", "-out", "broker.crt"],
    ]
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for cmd in steps:
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True, timeout=60)
    chain = [(folder / f).read_bytes() for f in ("broker.key", "broker.crt", "ca.pem")]
    (folder / "broker.pem").write_bytes(b"".join(chain))


def _infra(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO_ROOT / "infra" / script), "kafka"], env=env, capture_output=True,
                          text=True, timeout=240)


class SecureBroker:
    def __init__(self, folder: Path, port: int, mechanism: str, password: str) -> None:
        self.folder, self.port, self.mechanism, self.password = folder, port, mechanism, password

    def settings(self, password: str | None = None, **extra: object) -> Settings:
        kafka = {"bootstrap_servers": f"127.0.0.1:{self.port}", "security_protocol": "SASL_SSL",
                 "sasl_mechanism": self.mechanism, "sasl_username": USER,
                 "sasl_password": self.password if password is None else password,
                 "ssl_ca_location": str(self.folder / "ca.pem")}
        raw = {"kafka": kafka, "topics": {"prefix": f"sec{uuid.uuid4().hex[:8]}.", "partitions": 1}} | extra
        return parse_settings(raw, "<test>", environ={})


@contextmanager
def private_broker(folder: Path, mechanism: str) -> Iterator[SecureBroker]:
    """A broker of this test's own with a SASL_SSL listener whose one user is ``USER``."""
    _make_certificates(folder)
    password = f"pw-{secrets.token_hex(12)}"
    users = folder / "users"
    users.write_text(f"# name:password\n{USER}:{password}\n")
    users.chmod(0o600)
    plain_port, controller_port, sasl_port = _free_ports(3)
    env = os.environ | {
        "CAMCOUNT_STATE_DIR": str(folder / "state"),
        "CAMCOUNT_KAFKA_PORT": str(plain_port), "CAMCOUNT_KAFKA_CONTROLLER_PORT": str(controller_port),
        "CAMCOUNT_KAFKA_SASL_SSL_PORT": str(sasl_port), "CAMCOUNT_KAFKA_SASL_SSL_MECHANISM": mechanism,
        "CAMCOUNT_KAFKA_SSL_KEYSTORE_PEM": str(folder / "broker.pem"),
        "CAMCOUNT_KAFKA_SASL_USERS_FILE": str(users), "CAMCOUNT_KAFKA_HEAP": "-Xmx384m",
    }
    up = _infra("up.sh", env)
    try:
        assert up.returncode == 0, up.stderr
        assert f"SASL_SSL listener at 127.0.0.1:{sasl_port} ({mechanism})" in up.stderr
        assert password not in up.stderr
        yield SecureBroker(folder, sasl_port, mechanism, password)
    finally:
        down = _infra("down.sh", env)
        assert down.returncode == 0, down.stderr
        assert "Kafka: stopped" in down.stderr


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    with private_broker(tmp_path_factory.mktemp("sasl-ssl"), MECHANISM) as broker:
        yield broker


def _cli(config: Path, *args: str, password: str) -> subprocess.CompletedProcess:
    env = os.environ | {"CAMCOUNT_KAFKA_SASL_PASSWORD": password}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "-v", "-c", str(config), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_wrong_password_is_refused_with_a_clear_error(secure_broker: SecureBroker, tmp_path: Path) -> None:
    wrong = f"wrong-{secrets.token_hex(6)}"
    with pytest.raises(KafkaAuthenticationError, match="refused user 'camcount' with SCRAM-SHA-256") as err:
        check_connection(secure_broker.settings(password=wrong).kafka, timeout_s=10)
    assert "SASL authentication" in str(err.value) and "kafka.sasl_password" in str(err.value)

    settings = secure_broker.settings()
    config = write_config(settings, tmp_path / "camcount.yaml")  # the password stays out of the file
    assert secure_broker.password not in config.read_text()
    refused = _cli(config, "topics", "create", password=wrong)
    assert refused.returncode == 1, refused.stderr
    assert "refused user 'camcount'" in refused.stderr and "SASL authentication error" in refused.stderr
    assert wrong not in refused.stderr + refused.stdout

    # A long-running worker stops at once with the same message instead of retrying forever.
    worker = _cli(config, "infer", "--static", password=wrong)
    assert worker.returncode == 1, worker.stderr
    assert "refused user 'camcount'" in worker.stderr and wrong not in worker.stderr + worker.stdout


def test_plain_users_work_too(tmp_path: Path) -> None:
    with private_broker(tmp_path, "PLAIN") as broker:
        check_connection(broker.settings().kafka, timeout_s=30)
        with pytest.raises(KafkaAuthenticationError, match="refused user 'camcount' with PLAIN"):
            check_connection(broker.settings(password="not-it").kafka, timeout_s=10)
    properties = tmp_path / "state" / "kafka" / "server.properties"
    assert properties.stat().st_mode & 0o077 == 0  # it holds the PLAIN passwords


def test_ingest_inference_and_counter_run_over_sasl_ssl(
        secure_broker: SecureBroker, pets09: Path, tmp_path: Path, ch_settings: Settings,
        caplog: pytest.LogCaptureFixture) -> None:
    camera = {"id": "pets", "source": str(pets09), "fps": 10,
              "rules": [{"type": "line", "name": "mid", "points": [[0.5, 1.0], [0.5, 0.0]], "classes": ["person"]}]}
    # Inference reports its stats to ClickHouse: this test's own database.
    clickhouse = ch_settings.clickhouse.model_dump(mode="json") | {
        "password": ch_settings.clickhouse.password.get_secret_value()}
    settings = secure_broker.settings(cameras=[camera], clickhouse=clickhouse)
    password = secure_broker.password
    assert password not in repr(settings) and password not in str(settings.kafka)
    config = write_config(settings, tmp_path / "camcount.yaml")

    created = _cli(config, "topics", "create", password=password)
    assert created.returncode == 0, created.stderr
    assert f"{settings.topics.prefix}frames\tcreated" in created.stdout

    env = {"CAMCOUNT_KAFKA_SASL_PASSWORD": password}  # never in the config file
    counter = start_worker(config, "counter", log=tmp_path / "counter.log", env=env)
    infer = start_worker(config, "-v", "infer", "--idle-exit-s", "20", "--static", log=tmp_path / "infer.log",
                         env=env)
    try:
        with caplog.at_level(logging.DEBUG):
            stats = IngestWorker(settings, max_frames=FRAMES).run()
        assert stats["pets"]["frames_sent"] >= FRAMES, stats
        assert infer.wait(300) == 0, (tmp_path / "infer.log").read_text()[-3000:]
        lines = (tmp_path / "infer.log").read_text().splitlines()
        totals = json.loads([line for line in lines if line.startswith("{")][-1])
        assert totals["frames"] >= FRAMES, totals

        det = consume(settings, topics.name(settings, topics.DETECTIONS), lambda m: len(m) >= FRAMES, timeout_s=60)
        assert len(det) >= FRAMES
        out = consume(settings, topics.name(settings, topics.COUNT_EVENTS),
                      lambda m: len(_heartbeats(m)) >= FRAMES, timeout_s=120, workers=(counter,))
        assert [h["seq"] for h in _heartbeats(out)][:FRAMES] == list(range(FRAMES))

        # Input limits hold over the same listener: too many boxes is a clear DLQ record.
        flood = dict(det_value(det[0]), seq=10_000, boxes=[_BOX] * (settings.counting.max_boxes + 1))
        produce(settings, topics.name(settings, topics.DETECTIONS), [("pets", DETECTIONS, flood)])
        dead = consume(settings, topics.name(settings, topics.dlq(topics.DETECTIONS)), lambda m: len(m) >= 1,
                       timeout_s=60, workers=(counter,))
        headers = dict(dead[0].headers())
        assert headers["dlq.reason"] == b"input_limit"
        assert b"over counting.max_boxes=1000" in headers["dlq.error"]
    finally:
        for proc in (counter, infer):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    logs = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.log")}
    logs["ingest (in-process)"] = caplog.text
    logs["topics create"] = created.stdout + created.stderr
    for name, text in logs.items():
        assert password not in text, f"the SASL password appears in the {name} log"
    assert password in str(common_config(settings.kafka).values())  # it does reach librdkafka


_BOX = dict(class_id=0, score=0.9, x1=0.1, y1=0.1, x2=0.2, y2=0.2)


def det_value(msg) -> dict:
    return default_codec().decode_as(msg.value(), DETECTIONS)


def _heartbeats(msgs: list) -> list[dict]:
    codec = default_codec()
    return [v for name, v in (codec.decode(m.value()) for m in msgs) if name == HEARTBEAT]

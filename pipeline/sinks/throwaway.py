"""A private, throwaway ClickHouse server: own ports, config and data folder.

For tests and benchmarks that must stop and start a server (an outage) without touching
the shared one that ``infra/up.sh`` runs for everybody. It renders the same templates
(``infra/clickhouse/*.in``) into a folder of its own and runs ``clickhouse-server`` on
free loopback ports; ``stop()``/``start()`` keep the data, ``close()`` removes it all.

    with ThrowawayClickHouse() as server:
        settings = ...clickhouse=server.config(database="t1")...
        server.stop(); server.start()
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from pipeline.config import REPO_ROOT, ClickHouseConfig
from pipeline.exceptions import CamcountError
from pipeline.sinks.clickhouse import wait_until_up

TEMPLATES = REPO_ROOT / "infra" / "clickhouse"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ThrowawayClickHouse:
    """One ``clickhouse-server`` process under a temporary folder."""

    def __init__(self, host: str = "127.0.0.1", start_timeout_s: float = 60.0) -> None:
        if shutil.which("clickhouse-server") is None:
            raise CamcountError("clickhouse-server is not installed (infra/up.sh installs it)")
        self.host = host
        self.start_timeout_s = start_timeout_s
        self.state = Path(tempfile.mkdtemp(prefix="camcount-ch-"))
        self.tcp_port, self.http_port = free_port(host), free_port(host)
        self._proc: subprocess.Popen | None = None
        (self.state / "logs").mkdir()
        (self.state / "clickhouse" / "data").mkdir(parents=True)
        for name in ("config.xml", "users.xml"):
            text = (TEMPLATES / f"{name}.in").read_text()
            for key, value in {"@STATE@": str(self.state), "@HOST@": host, "@CH_TCP_PORT@": str(self.tcp_port),
                               "@CH_HTTP_PORT@": str(self.http_port), "@CH_PASSWORD@": ""}.items():
                text = text.replace(key, value)
            (self.state / "clickhouse" / name).write_text(text)

    def config(self, database: str = "camcount") -> ClickHouseConfig:
        return ClickHouseConfig(host=self.host, port=self.tcp_port, database=database)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> tuple[int, ...]:
        """Start (or restart, same data) the server and wait until it answers; returns its version."""
        if self.running:
            raise CamcountError("the throwaway ClickHouse server is already running")
        log = open(self.state / "logs" / "clickhouse.out", "ab")
        self._proc = subprocess.Popen(
            ["clickhouse-server", f"--config-file={self.state / 'clickhouse' / 'config.xml'}"],
            cwd=self.state / "clickhouse", stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            return wait_until_up(self.config(), timeout_s=self.start_timeout_s)
        except CamcountError:
            tail = (self.state / "logs" / "clickhouse.err.log")
            detail = tail.read_text()[-2000:] if tail.exists() else "(no error log)"
            self.stop()
            raise CamcountError(f"throwaway ClickHouse did not start:\n{detail}") from None

    def stop(self, kill: bool = False, timeout_s: float = 30.0) -> None:
        """Stop the server; the data stays for the next ``start()``.

        ``kill=True`` is a crash (SIGKILL, immediate); otherwise a clean shutdown (SIGTERM,
        which waits up to ~10 s for open client connections), SIGKILL after ``timeout_s``.
        """
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        deadline = time.monotonic() + 10  # the port must be free before a restart binds it again
        while time.monotonic() < deadline and _port_open(self.host, self.tcp_port):
            time.sleep(0.1)

    def close(self) -> None:
        """Kill the server and delete its folder."""
        self.stop(kill=True)
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> "ThrowawayClickHouse":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0

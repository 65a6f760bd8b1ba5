"""Real servers for the watcher's tests, each on a free loopback port, stopped afterwards:
Mosquitto with its own config file, Prometheus scraping a test exporter that plays a
known series (normal readings, then a sensor stuck far out of range). A plain module, so
tests import its helpers by a name no other test package uses; ``conftest.py`` re-exports
its fixtures."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from factories import TINY_FEATURES

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
SCRAPE_S = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Exporter:
    """Plays ``sensor_value{pump, sensor}`` for two pumps: Gaussian readings, or, for a
    pump in ``stuck``, sensor f3 stuck at 7 (far outside what the model learned)."""

    port: int
    stuck: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    """Pumps whose f7 is not exported (a partial scrape: gaps)."""
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))

    def body(self) -> bytes:
        lines = ["# TYPE sensor_value gauge"]
        for pump in ("p1", "p2"):
            values = self.rng.normal(scale=0.5, size=len(TINY_FEATURES))
            if pump in self.stuck:
                values[3] = 7.0
            for name, value in zip(TINY_FEATURES, values, strict=True):
                if name == "f7" and pump in self.missing:
                    continue
                lines.append(f'sensor_value{{pump="{pump}",sensor="{name}"}} {float(value)!r}')
        return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    served = Exporter(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served.body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen[bytes]


def start_prometheus(tmp: Path, targets: dict[str, int]) -> PrometheusServer:
    """Prometheus scraping ``targets`` (job name -> loopback port) every second."""
    port = free_port()
    jobs = "".join(
        f"  - job_name: {name}\n    honor_labels: true\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
        for name, target in targets.items()
    )
    config = tmp / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_S:g}s\n  evaluation_interval: {SCRAPE_S:g}s\n"
        f"scrape_configs:\n{jobs}"
    )
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return PrometheusServer(url, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise TimeoutError("prometheus did not become ready")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def prometheus(tmp_path: Path, exporter: Exporter) -> Iterator[PrometheusServer]:
    server = start_prometheus(tmp_path, {"exporter": exporter.port})
    yield server
    stop(server.process)


def wait_for_samples(url: str, query: str, n: int, timeout: float = 30.0) -> None:
    """Until ``query`` has ``n`` series (the first scrapes are in)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/api/v1/query", params={"query": query}).json()
        if len(answer["data"]["result"]) >= n:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{query} never had {n} series")


@dataclass
class Mosquitto:
    port: int
    config: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of its own (never the system's on 1883)."""
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\n"
    )
    broker = Mosquitto(port, config)
    broker.start()
    yield broker
    broker.stop()

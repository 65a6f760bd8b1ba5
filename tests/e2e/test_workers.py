"""``anomaly-api serve --workers 2`` as real processes on a throwaway Redis: an admin reload,
a threshold revision and SIGHUP reach every worker, SIGTERM drains every worker's requests,
and /metrics adds every worker's counts up whichever worker answers. Each worker keeps its
own prediction cache (the default): nothing of it reaches Redis.

Which worker the kernel hands a connection to is not ours to choose: the tests read each
worker's own metric file (``PROMETHEUS_MULTIPROC_DIR``, under the server's TMPDIR) and
open connections until each worker holds or has served some, bounded in count. Each worker
listens on its own ``SO_REUSEPORT`` socket, which the supervisor also holds (read from
``/proc``): a burst of new connections reaches both workers, the connections the kernel
queues on a killed worker's socket are answered by its replacement, and SIGTTOU / SIGTTIN
remove and add a worker with its socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_service import eventually, read_response, refuses_connections
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from anomaly_api.config import Settings
from anomaly_api.testing import RedisServer, ServerProcess, running_server, throwaway_redis
from factories import fit_tiny_artifact

WORKERS = 2
CACHE_PREFIX = Settings.model_fields["cache_prefix"].default


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with throwaway_redis(tmp_path) as server:
        yield server


@pytest.fixture
def workers(tmp_path: Path, redis_server: RedisServer) -> Iterator[ServerProcess]:
    """Two workers over a tiny model (``tiny-1``) sharing the throwaway Redis."""
    artifacts = tmp_path / "artifacts"
    fit_tiny_artifact(artifacts)
    workdir = tmp_path / "server"
    workdir.mkdir()
    env = {
        "ANOMALY_ARTIFACTS_DIR": str(artifacts),
        "ANOMALY_INFERENCE_BACKEND": "numpy",
        "ANOMALY_REDIS_URL": redis_server.url,
        "ANOMALY_REVISION_PREFIX": "e2e:workers:",
        "ANOMALY_REVISION_RETRY_S": "0.5",
        "ANOMALY_WORKERS": str(WORKERS),
        "TMPDIR": str(workdir),  # the metrics directory is made here
    }
    with running_server(workdir, env) as server:
        eventually(lambda: len(_served_versions(server)) == WORKERS, "both workers up")
        yield server


def _samples(server: ServerProcess, name: str) -> list[Any]:
    with httpx.Client(headers={"Connection": "close"}) as client:  # any worker may answer
        # one on a killed worker's socket waits for its replacement
        text = client.get(f"{server.url}/metrics", timeout=90).text
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def _served_versions(server: ServerProcess) -> dict[str, str]:
    """The version each live worker serves, by pid (``anomaly_model_info`` is per worker)."""
    return {
        s.labels["pid"]: s.labels["version"]
        for s in _samples(server, "anomaly_model_info")
        if s.value == 1
    }


def _every_worker_serves(server: ServerProcess, version: str) -> bool:
    served = _served_versions(server)
    return len(served) == WORKERS and set(served.values()) == {version}


def _per_worker(server: ServerProcess, prefix: str, sample: str, **labels: str) -> dict[int, float]:
    """One sample's value in each worker's own metric file, by pid."""
    (directory,) = server.log_path.parent.glob("anomaly-api-metrics-*")
    values: dict[int, float] = {}
    for path in directory.glob(f"{prefix}_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, found, _ = json.loads(key)
            if name == sample and all(found.get(k) == v for k, v in labels.items()):
                values[pid] = values.get(pid, 0.0) + value
    return values


def _predict(server: ServerProcess, value: float) -> None:
    body = {"features": [value] * 8}
    with httpx.Client(headers={"Connection": "close"}) as client:  # a new connection each
        answer = client.post(f"{server.url}/predict", json=body, timeout=10)
    assert answer.status_code == 200, answer.text


def _listeners(pid: int, port: int) -> set[int]:
    """The sockets (inodes) listening on loopback ``port`` that process ``pid`` holds."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    listening = {int(row[9]) for row in rows if row[1].endswith(f":{port:04X}") and row[3] == "0A"}
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(fd)
            if target.startswith("socket:["):
                held.add(int(target[8:-1]))
    return held & listening


def _worker_sockets(server: ServerProcess) -> dict[int, int]:
    """Each worker's listening socket, by pid: one each, all held by the supervisor too."""
    sockets: dict[int, int] = {}
    for pid in map(int, _served_versions(server)):
        (sockets[pid],) = _listeners(pid, server.port)
    assert set(sockets.values()) == _listeners(server.process.pid, server.port)
    return sockets


def test_reload_revision_and_sighup_reach_every_worker(
    workers: ServerProcess, tmp_path: Path
) -> None:
    assert _every_worker_serves(workers, "tiny-1")

    body = {"target_fpr": 0.05, "new_version": "tiny-1-f05"}
    moved = httpx.post(f"{workers.url}/admin/thresholds", json=body, timeout=30)
    assert moved.status_code == 200, moved.text
    assert moved.json()["announced"] is True
    eventually(lambda: _every_worker_serves(workers, "tiny-1-f05"), "revision everywhere")

    back = httpx.post(f"{workers.url}/admin/reload", params={"version": "tiny-1"}, timeout=30)
    assert back.status_code == 200, back.text
    assert back.json()["announced"] is True
    eventually(lambda: _every_worker_serves(workers, "tiny-1"), "reload everywhere")

    # SIGHUP replaces the workers one at a time; each new one loads LATEST and listens on
    # its predecessor's socket
    before = _worker_sockets(workers)
    fit_tiny_artifact(tmp_path / "artifacts", version="tiny-2", seed=1)
    workers.signal(signal.SIGHUP)
    eventually(lambda: _every_worker_serves(workers, "tiny-2"), "SIGHUP everywhere", 90)
    after = _worker_sockets(workers)
    assert set(before).isdisjoint(after)  # all replaced
    assert sorted(after.values()) == sorted(before.values())
    assert workers.process.poll() is None


def test_metrics_add_up_across_workers(workers: ServerProcess, redis_server: RedisServer) -> None:
    sample = "anomaly_http_requests_total"
    labels = {"method": "POST", "route": "/predict", "status": "200"}
    sent = 0
    while len(_per_worker(workers, "counter", sample, **labels)) < WORKERS:
        assert sent < 400, "one worker got every connection"
        for _ in range(10):
            _predict(workers, float(sent))  # a new reading each: a cache miss each
            sent += 1

    def every_request_counted() -> bool:  # a request is counted once its answer is sent
        return sum(_per_worker(workers, "counter", sample, **labels).values()) == sent

    eventually(every_request_counted, "every worker's requests counted")
    for _ in range(6):  # whichever worker answers, the same total
        (total,) = [s for s in _samples(workers, sample) if s.labels == labels]
        assert total.value == sent

    def cache_counts_add_up() -> bool:  # a collector's values, copied by each worker
        ops = {
            s.labels["result"]: s.value for s in _samples(workers, "anomaly_cache_operations_total")
        }
        return ops.get("miss", 0) == sent

    eventually(cache_counts_add_up, "every worker's cache misses counted")
    with redis_server.client() as client:  # each worker's cache is its own
        assert list(client.scan_iter(match=f"{CACHE_PREFIX}*")) == []

    # a worker killed outright: the supervisor starts another; its counts stay in the sum,
    # its per-worker lines go
    killed = int(next(iter(_served_versions(workers))))
    os.kill(killed, signal.SIGKILL)

    def replaced() -> bool:
        pids = {int(pid) for pid in _served_versions(workers)}
        return len(pids) == WORKERS and killed not in pids

    eventually(replaced, "the killed worker replaced", 90)
    (total,) = [s for s in _samples(workers, sample) if s.labels == labels]
    assert total.value == sent


def _half_sent(port: int, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        "POST /predict/batch HTTP/1.1\r\nHost: test\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[: len(body) // 2])
    return sock


def test_sigterm_drains_every_workers_requests(workers: ServerProcess) -> None:
    rows = [[float(i + j) for j in range(8)] for i in range(100)]
    body = json.dumps({"observations": [{"features": r} for r in rows]}).encode()
    in_flight = "anomaly_http_requests_in_progress"
    sockets: list[socket.socket] = []

    def held() -> dict[int, float]:
        return _per_worker(workers, "gauge_livesum", in_flight)

    while len(held()) < WORKERS or min(held().values()) < 2:  # each worker holds 2 or more
        assert len(sockets) < 40, "one worker got every connection"
        sockets.append(_half_sent(workers.port, body))
        eventually(lambda: sum(held().values()) == len(sockets), "request started")

    workers.signal(signal.SIGTERM)
    eventually(lambda: refuses_connections(workers.port), "no new connections")
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def finish(sock: socket.socket) -> None:
        sock.sendall(body[len(body) // 2 :])
        answer = read_response(sock)
        sock.close()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=finish, args=(sock,)) for sock in sockets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    exit_code = workers.wait_exit()
    assert [status for status, _ in answers] == [200] * len(sockets)
    assert all(len(answer["predictions"]) == 100 for _, answer in answers)
    assert exit_code == 0, workers.output()[-2000:]
    finished = [r for r in workers.log_records() if "Finished server process" in r["message"]]
    assert len(finished) == WORKERS


def _burst(port: int, connections: int) -> list[int]:
    """Statuses of one /predict on each of ``connections`` connections, all opened and sent
    before any answer is read: they wait together in the kernel's accept queues."""
    body = b'{"features": [1, 2, 3, 4, 5, 6, 7, 8]}'
    request = (
        "POST /predict HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    socks = [socket.create_connection(("127.0.0.1", port), timeout=90) for _ in range(connections)]
    for sock in socks:
        sock.sendall(request)
    statuses = []
    for sock in socks:
        statuses.append(read_response(sock)[0])
        sock.close()
    return statuses


def _predictions_by_worker(server: ServerProcess, total: int) -> dict[int, float]:
    """The /predict answers each worker has counted, by pid, once they add up to ``total``."""
    labels = {"method": "POST", "route": "/predict", "status": "200"}

    def counted() -> dict[int, float]:
        return _per_worker(server, "counter", "anomaly_http_requests_total", **labels)

    eventually(lambda: sum(counted().values()) == total, "every request counted")
    return counted()


def test_a_burst_of_new_connections_reaches_every_worker(workers: ServerProcess) -> None:
    sockets = _worker_sockets(workers)
    assert len(set(sockets.values())) == WORKERS  # a socket each
    assert _burst(workers.port, 64) == [200] * 64
    answered = _predictions_by_worker(workers, 64)
    # the kernel hashes each connection to one socket: fewer than 12 of 64 on one of two
    # happens about once in ten million runs
    assert set(answered) == set(sockets)
    assert min(answered.values()) >= 12, answered


def test_a_killed_workers_connections_wait_for_its_replacement(workers: ServerProcess) -> None:
    sockets = _worker_sockets(workers)
    killed = min(sockets)
    os.kill(killed, signal.SIGKILL)
    # sent at once, long before a replacement can start: about half of them queue on the
    # killed worker's socket (all 24 on the other: once in 17 million runs)
    assert _burst(workers.port, 24) == [200] * 24
    answered = _predictions_by_worker(workers, 24)
    (replacement,) = set(answered) - set(sockets)
    assert answered[replacement] > 0
    eventually(lambda: killed not in _served_versions(workers), "the killed worker gone")
    after = _worker_sockets(workers)
    assert set(after) == set(sockets) - {killed} | {replacement}
    assert after[replacement] == sockets[killed]  # the killed worker's socket, kept open


def test_sigttou_and_sigttin_remove_and_add_a_worker_with_its_socket(
    workers: ServerProcess,
) -> None:
    before = _worker_sockets(workers)

    def one_left() -> bool:
        held = _listeners(workers.process.pid, workers.port)  # by the supervisor
        return len(_served_versions(workers)) == 1 and len(held) == 1

    workers.signal(signal.SIGTTOU)  # the last worker stops, its socket closes
    eventually(one_left, "one worker and one socket left", 60)
    ((pid, kept),) = _worker_sockets(workers).items()
    assert before[pid] == kept
    workers.signal(signal.SIGTTIN)  # a worker on a new socket
    eventually(lambda: len(_served_versions(workers)) == WORKERS, "a worker added", 90)
    after = _worker_sockets(workers)
    assert after[pid] == kept
    assert len(set(after.values())) == WORKERS
    assert _burst(workers.port, 16) == [200] * 16

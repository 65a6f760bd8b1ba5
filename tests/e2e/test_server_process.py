"""Real server processes: graceful SIGTERM, hot reload under load, tampered reload, SIGHUP.

Each test starts ``anomaly-api serve`` on a free loopback port; loads are bounded in
count and time. Nothing here asserts on timing.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from e2e_service import read_response, refuses_connections

from anomaly_api.artifacts import MODEL_FILE, load_artifact
from anomaly_api.testing import ServerProcess, running_server
from api_testing import NORMAL

ADMIN = {"X-API-Key": "admin-test-key"}
CLIENT = {"X-API-Key": "client-test-key"}
KEYS = {"ANOMALY_API_KEYS": "client-test-key", "ANOMALY_ADMIN_API_KEYS": "admin-test-key"}


def _in_progress(server: ServerProcess) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("anomaly_http_requests_in_progress "):
            return float(line.split()[1])
    raise AssertionError("no in-progress gauge in /metrics")


def test_sigterm_finishes_in_flight_requests_and_exits_zero(
    tmp_path: Path, tiny_artifacts_dir: Path
) -> None:
    """Requests whose bodies are still arriving when SIGTERM lands are all answered."""
    n_requests = 12
    rows = [[float(i + j) for j in range(8)] for i in range(200)]
    bodies = [
        json.dumps({"observations": [{"features": r} for r in rows[i:]]}).encode()
        for i in range(n_requests)
    ]
    with running_server(tmp_path, {"ANOMALY_ARTIFACTS_DIR": str(tiny_artifacts_dir)}) as server:
        sockets = []
        for body in bodies:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            head = (
                "POST /predict/batch HTTP/1.1\r\nHost: test\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body[: len(body) // 2])
            sockets.append(sock)
        deadline = time.monotonic() + 30
        while _in_progress(server) < n_requests + 1:  # + the /metrics request itself
            assert time.monotonic() < deadline, "the server never started the requests"
            time.sleep(0.05)
        server.signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not refuses_connections(server.port):  # SIGTERM handled: no new connections
            assert time.monotonic() < deadline, "the server kept accepting connections"
            time.sleep(0.05)
        answers = []
        for sock, body in zip(sockets, bodies, strict=True):
            sock.sendall(body[len(body) // 2 :])
            answers.append(read_response(sock))
            sock.close()
        exit_code = server.wait_exit()
    assert [status for status, _ in answers] == [200] * n_requests
    assert [len(body["predictions"]) for _, body in answers] == [200 - i for i in range(12)]
    assert exit_code == 0, server.output()[-2000:]
    messages = [record.get("message", "") for record in server.log_records()]
    assert "Application shutdown complete." in messages


class _Load:
    """Threads sending /predict for pool rows until stopped (bounded in count)."""

    def __init__(self, url: str, pool: list[list[float]], threads: int = 4) -> None:
        self.url = url
        self.pool = pool
        self.results: list[tuple[float, int, dict[str, Any] | str]] = []
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(threads)
        ]

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=self.url, headers=CLIENT, timeout=30) as client:
            for _ in range(2000):
                if self.stop_event.is_set():
                    return
                index = int(rng.integers(len(self.pool)))
                sent = time.monotonic()
                try:
                    response = client.post("/predict", json={"features": self.pool[index]})
                    outcome: dict[str, Any] | str = (
                        response.json() | {"row": index}
                        if response.status_code == 200
                        else f"HTTP {response.status_code}"
                    )
                except httpx.HTTPError as exc:
                    outcome = repr(exc)
                with self._lock:
                    self.results.append((sent, index, outcome))

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(60)

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.results) < count:
            assert time.monotonic() < deadline, "the load made no progress"
            time.sleep(0.02)


def test_hot_reload_under_load_then_tampered_then_sighup(
    tmp_path: Path, fit_version: Callable[..., Path]
) -> None:
    artifacts = tmp_path / "artifacts"
    fit_version(artifacts, "tiny-2", seed=1)
    fit_version(artifacts, "tiny-1", seed=0)
    pool = np.random.default_rng(7).normal(size=(40, 8))
    pool[::5] *= 6
    expected = {}
    for version in ("tiny-1", "tiny-2"):
        model = load_artifact(artifacts, version).model
        expected[version] = model.combine(model.detector_scores(pool)).anomaly_score
    env = {"ANOMALY_ARTIFACTS_DIR": str(artifacts), **KEYS}  # in-process cache
    with running_server(tmp_path, env) as server:
        with _Load(server.url, pool.tolist()) as load:
            load.wait_for(300)
            reload = httpx.post(
                f"{server.url}/admin/reload", params={"version": "tiny-2"}, headers=ADMIN
            )
            swapped_at = time.monotonic()
            assert reload.status_code == 200, reload.text
            info = httpx.get(f"{server.url}/model/info", headers=CLIENT).json()
            assert info["version"] == "tiny-2"
            assert httpx.get(f"{server.url}/health").json()["model_version"] == "tiny-2"
            metrics = httpx.get(f"{server.url}/metrics").text
            assert 'anomaly_model_info{version="tiny-2"} 1.0' in metrics
            load.wait_for(len(load.results) + 300)
        _check_answers(load, swapped_at, expected)

        # A tampered artifact is refused and the old model keeps serving.
        fit_version(artifacts, "tiny-3", seed=3)
        model_file = artifacts / "tiny-3" / MODEL_FILE
        model_file.write_bytes(model_file.read_bytes()[:-1] + b"\x01")
        refused = httpx.post(
            f"{server.url}/admin/reload", params={"version": "tiny-3"}, headers=ADMIN
        )
        assert refused.status_code == 409
        assert "integrity check failed" in refused.json()["error"]["message"]
        served = httpx.post(f"{server.url}/predict", json={"features": NORMAL}, headers=CLIENT)
        assert served.json()["model_version"] == "tiny-2"

        # SIGHUP reloads LATEST.
        fit_version(artifacts, "tiny-4", seed=4)
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=server.url, headers=CLIENT) as client:
            while client.get("/model/info").json()["version"] != "tiny-4":
                assert time.monotonic() < deadline, "SIGHUP did not reload the model"
                time.sleep(0.1)
        assert server.stop() == 0
    records = server.log_records()
    access = [r for r in records if r.get("logger") == "anomaly_api.access"]
    predict = [r for r in access if r["route"] == "/predict" and r["status"] == 200]
    assert {"request_id", "method", "status", "latency_ms", "rows", "cache_hits"} <= set(predict[0])
    assert predict[0]["model_version"] == "tiny-1"
    assert "client-test-key" not in server.output()
    assert "admin-test-key" not in server.output()


def _check_answers(load: _Load, swapped_at: float, expected: dict[str, Any]) -> None:
    """No failure; after the swap only the new version; every answer its version's own."""
    results = list(load.results)
    assert [outcome for _, _, outcome in results if isinstance(outcome, str)] == []
    answers = [(sent, outcome) for sent, _, outcome in results if isinstance(outcome, dict)]
    after = [answer for sent, answer in answers if sent > swapped_at]
    assert after, "no request was sent after the reload"
    assert {answer["model_version"] for answer in after} == {"tiny-2"}
    assert any(answer["cached"] for answer in after)  # the new version's own cache entries
    assert any(answer["cached"] and answer["model_version"] == "tiny-1" for _, answer in answers)
    for _, answer in answers:  # cached or not, every answer is its own version's
        want = expected[answer["model_version"]][answer["row"]]
        assert answer["anomaly_score"] == pytest.approx(want, rel=1e-9, abs=1e-12)

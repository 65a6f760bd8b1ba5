"""The result series' cardinality bound and the webhook sink against a real HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from anomaly_api.config import Settings
from anomaly_api.watch.config import ModelRef, WebhookSinkConfig
from anomaly_api.watch.metrics import WatchMetrics
from anomaly_api.watch.scoring import Readings, ScoredReadings, WatchScorer
from anomaly_api.watch.sinks.webhook import WebhookSink
from factories import TINY_FEATURES

DEFAULT = ModelRef()


def rows(n: int, stuck: bool) -> list[dict[str, float]]:
    return [{f: (7.0 if stuck and f == "f3" else 0.1) for f in TINY_FEATURES} for _ in range(n)]


async def scored(
    scorer: WatchScorer, stream: str, n: int = 1, stuck: bool = False, t0: float = 1e9
) -> ScoredReadings:
    batch = Readings(stream, {"pump": stream}, [t0 + i for i in range(n)], rows(n, stuck))
    outcome = await scorer.score("pumps", DEFAULT, batch)
    assert outcome.scored == n
    return outcome.results[0]


async def test_new_series_beyond_the_bound_are_refused_and_old_ones_kept(
    tiny_artifacts_dir: Path,
) -> None:
    scorer = WatchScorer(Settings(), tiny_artifacts_dir)
    metrics = WatchMetrics(max_series=2)
    for stream in ("a", "b", "c"):
        metrics.results.observe(await scored(scorer, stream))
    metrics.results.observe(await scored(scorer, "a", stuck=True, t0=2e9))
    text = generate_latest(metrics.registry).decode()
    assert 'anomaly_is_anomaly{pump="a",stream="a",watch_job="pumps"} 1.0' in text
    assert 'anomaly_is_anomaly{pump="b",stream="b",watch_job="pumps"} 0.0' in text
    assert 'stream="c"' not in text
    assert 'anomaly_watch_series_refused_total{watch_job="pumps"} 1.0' in text
    assert text.count("anomaly_expected_lower{") == 2 * len(TINY_FEATURES)
    await scorer.close()


class Receiver:
    """A webhook receiver answering with the statuses it is given, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.statuses.pop(0) if state.statuses else 200
            if status == 200:
                state.received.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


async def test_webhook_retries_then_delivers_an_alertmanager_message(
    tiny_artifacts_dir: Path, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    state.statuses = [503, 500]
    metrics = WatchMetrics(max_series=10)
    dead = metrics.sink_failures.labels("pumps", "webhook")
    sink = WebhookSink("pumps", WebhookSinkConfig(url=url, retries=3, backoff="10ms"), dead)
    scorer = WatchScorer(Settings(), tiny_artifacts_dir)
    result = await scored(scorer, "p1", n=3, stuck=True)
    assert result.events
    assert result.events[0].open
    await sink.write(result, live=True)
    await sink.write(result, live=True)  # the same open event: sent once
    await sink.close()
    await scorer.close()
    assert len(state.received) == 1
    message = state.received[0]
    assert message["status"] == "firing"
    alert = message["alerts"][0]
    assert alert["labels"] == {
        "alertname": "AnomalyEvent",
        "pump": "p1",
        "watch_job": "pumps",
        "stream": "p1",
    }
    assert alert["annotations"]["top_sensors"].startswith("f3 ")
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert dead._value.get() == 0


async def test_webhook_dead_letters_after_its_retries(
    tiny_artifacts_dir: Path, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    state.statuses = [500, 500, 500]
    metrics = WatchMetrics(max_series=10)
    dead = metrics.sink_failures.labels("pumps", "webhook")
    sink = WebhookSink("pumps", WebhookSinkConfig(url=url, retries=2, backoff="10ms"), dead)
    scorer = WatchScorer(Settings(), tiny_artifacts_dir)
    await sink.write(await scored(scorer, "p1", n=3, stuck=True), live=True)
    await sink.close()
    await scorer.close()
    assert state.received == []
    assert dead._value.get() == 1


async def test_webhook_sends_an_event_when_it_opens_and_when_it_closes(
    tiny_artifacts_dir: Path, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    metrics = WatchMetrics(max_series=10)
    dead = metrics.sink_failures.labels("pumps", "webhook")
    sink = WebhookSink("pumps", WebhookSinkConfig(url=url, backoff="10ms"), dead)
    scorer = WatchScorer(Settings(), tiny_artifacts_dir)
    await sink.write(await scored(scorer, "p1", n=3, stuck=True), live=True)
    quiet = await scored(scorer, "p1", n=12, t0=1e9 + 3)  # past the policy's window
    assert [e.open for e in quiet.events] == [False]  # the closing batch carries the event
    await sink.write(quiet, live=True)
    await sink.close()
    await scorer.close()
    assert [m["status"] for m in state.received] == ["firing", "resolved"]
    resolved = state.received[1]["alerts"][0]
    assert resolved["endsAt"] != "0001-01-01T00:00:00Z"
    assert resolved["fingerprint"] == state.received[0]["alerts"][0]["fingerprint"]

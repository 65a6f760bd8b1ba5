"""MQTT sink: answers to ``<prefix>/<stream>/answers``, events to ``<prefix>/<stream>/events``.

QoS 1 and never retained (a retained answer would greet a new subscriber with a stale
state). Publishes run from a queue in the background; while the broker is away the queue
holds up to its bound and reconnects with back-off; beyond it messages are dropped and
counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import aiomqtt
import orjson
from prometheus_client import Counter

from anomaly_api.watch.config import MqttSinkConfig
from anomaly_api.watch.mqtt import connect
from anomaly_api.watch.scoring import ScoredReadings

__all__ = ["MqttSink"]

_log = logging.getLogger(__name__)
_QUEUE = 10_000


class MqttSink:
    """Publishes one job's answers and events."""

    def __init__(self, job: str, config: MqttSinkConfig, dropped: Counter) -> None:
        self.job = job
        self.config = config
        self.dropped = dropped
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(_QUEUE)
        self._worker = asyncio.create_task(self._publish_all())

    async def write(self, scored: ScoredReadings, *, live: bool) -> None:
        base = f"{self.config.topic_prefix}/{scored.readings.stream_id}"
        if live and self.config.answers:
            body = {
                "watch_job": self.job,
                "stream_id": scored.readings.stream_id,
                "labels": scored.readings.labels,
                "model_version": scored.model_version,
                "answers": scored.answers,
            }
            self._put(f"{base}/answers", orjson.dumps(body))
        for event in scored.events:
            self._put(f"{base}/events", orjson.dumps(event))

    def _put(self, topic: str, payload: bytes) -> None:
        try:
            self.queue.put_nowait((topic, payload))
        except asyncio.QueueFull:
            self.dropped.inc()

    async def _publish_all(self) -> None:
        delay = 0.25
        pending: tuple[str, bytes] | None = None
        while True:
            try:
                async with connect(
                    self.config, default_id=f"anomaly-watch-sink-{self.job}-{os.getpid()}"
                ) as client:
                    delay = 0.25
                    while True:
                        if pending is None:
                            pending = await self.queue.get()
                        await client.publish(pending[0], pending[1], qos=1, retain=False)
                        pending = None
                        self.queue.task_done()
            except aiomqtt.MqttError as exc:
                _log.warning(
                    "job %s: sink broker lost (%s); retrying in %.2fs", self.job, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max)

    async def close(self) -> None:
        """Publish what is queued (for a moment), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout=2.0)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker

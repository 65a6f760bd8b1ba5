"""A reading's message is acknowledged only once the reading is scored: a watcher that
dies between receipt and scoring gets the message again when it is back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiomqtt
import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter
from watch_servers import Mosquitto

from anomaly_api.watch.config import MqttSourceConfig
from anomaly_api.watch.scoring import Readings
from anomaly_api.watch.sources.mqtt import MqttSource

pytestmark = pytest.mark.process

Handle = Callable[[list[Readings]], Awaitable[object]]


def source(port: int) -> MqttSource:
    config = MqttSourceConfig(
        port=port, topics=["plant/+/readings"], client_id="anomaly-watch-ack-test"
    )
    registry = CollectorRegistry()
    return MqttSource(
        "plant",
        config,
        invalid=Counter("invalid", "", registry=registry),
        reconnects=Counter("reconnects", "", registry=registry),
    )


async def publish(port: int, ts: float) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        payload = orjson.dumps({"ts": ts, "values": {"f0": 1.0}})
        await client.publish("plant/p1/readings", payload, qos=1)


async def run_until_received(port: int, handle: Handle, ts: float) -> asyncio.Task[None]:
    """A source running ``handle``, once connected and ``ts`` published to it."""
    mqtt = source(port)
    task = asyncio.create_task(mqtt.run(handle))
    await asyncio.wait_for(mqtt.connected.wait(), 10)
    await publish(port, ts)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_reading_received_but_not_scored_comes_again(mosquitto: Mosquitto) -> None:
    received = asyncio.Event()

    async def dies_before_scoring(batches: list[Readings]) -> None:
        received.set()
        await asyncio.Event().wait()  # held here until the watcher is stopped

    first = await run_until_received(mosquitto.port, dies_before_scoring, 1.0)
    await asyncio.wait_for(received.wait(), 10)
    await stop(first)  # between receipt and scoring

    scored: list[float] = []
    seen = asyncio.Event()
    wanted = 2.0

    async def scores(batches: list[Readings]) -> None:
        scored.extend(t for batch in batches for t in batch.timestamps)
        if wanted in scored:
            seen.set()

    second = await run_until_received(mosquitto.port, scores, 2.0)
    await asyncio.wait_for(seen.wait(), 10)
    await stop(second)
    assert scored == [1.0, 2.0]  # the unacknowledged reading first, then the new one

    # both were acknowledged once scored: the next start gets neither again
    scored.clear()
    seen.clear()
    wanted = 3.0
    third = await run_until_received(mosquitto.port, scores, 3.0)
    await asyncio.wait_for(seen.wait(), 10)
    await stop(third)
    assert scored == [3.0]

"""The MQTT source and sink end to end on a real Mosquitto of the test's own."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
from watch_helpers import until
from watch_servers import Mosquitto

from anomaly_api.config import Settings
from anomaly_api.service.stream_timestamps import iso
from anomaly_api.watch.config import parse_watch_config
from anomaly_api.watch.runner import Watcher
from factories import TINY_FEATURES

pytestmark = pytest.mark.process


def mqtt_watcher(port: int, tmp_path: Path, artifacts: Path) -> Watcher:
    broker = {"host": "127.0.0.1", "port": port, "reconnect_max": "500ms"}
    config = parse_watch_config(
        {
            "artifacts_dir": str(artifacts),
            "state_dir": str(tmp_path / "state"),
            "metrics": {"port": 0},
            "jobs": [
                {
                    "name": "plant",
                    "source": {"mqtt": {**broker, "topics": ["plant/+/readings"]}},
                    "sinks": {"metrics": True, "mqtt": {**broker, "topic_prefix": "anomaly"}},
                }
            ],
        }
    )
    return Watcher(config, Settings())


def reading(ts: float, stuck: bool = False, drop: str | None = None) -> bytes:
    values = {name: 0.1 * i for i, name in enumerate(TINY_FEATURES)}
    if stuck:
        values["f3"] = 7.0
    if drop is not None:
        del values[drop]
    return orjson.dumps({"ts": ts, "values": values})


class Answers:
    """Subscribes to the watcher's answers and events."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: list[tuple[float, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []
        self.ready = asyncio.Event()

    async def listen(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.subscribe("anomaly/#", qos=1)
            self.ready.set()
            async for message in client.messages:
                assert not message.retain
                body = orjson.loads(message.payload)  # type: ignore[arg-type]
                if message.topic.matches("anomaly/+/answers"):
                    for answer in body["answers"]:
                        self.answers.append((time.monotonic(), answer))
                else:
                    self.events.append(body)


async def publish(port: int, topic: str, *payloads: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=1)


@pytest.fixture
async def running(mosquitto: Mosquitto, tmp_path: Path, tiny_artifacts_dir: Path) -> Any:
    watcher = mqtt_watcher(mosquitto.port, tmp_path, tiny_artifacts_dir)
    task = asyncio.create_task(watcher.run())
    answers = Answers(mosquitto.port)
    listener = asyncio.create_task(answers.listen())
    await asyncio.wait_for(answers.ready.wait(), 10)
    await until(_connected(watcher), limit_s=10)
    yield watcher, answers
    listener.cancel()
    task.cancel()
    await asyncio.gather(task, listener, return_exceptions=True)


def _connected(watcher: Watcher) -> Any:
    async def check() -> bool:
        jobs = watcher.jobs
        source = jobs[0].mqtt_source if jobs else None
        return source is not None and source.connected.is_set()

    return check


def _count(watcher: Watcher, outcome: str) -> float:
    return float(watcher.metrics.readings.labels("plant", outcome)._value.get())


async def test_a_stuck_sensor_is_answered_within_a_second(
    running: tuple[Watcher, Answers], mosquitto: Mosquitto
) -> None:
    watcher, answers = running
    t0 = 1_700_000_000.0
    await publish(mosquitto.port, "plant/pump1/readings", *(reading(t0 + i) for i in range(3)))

    async def three() -> bool:
        return len(answers.answers) == 3

    await until(three, limit_s=10)
    assert not any(a["is_anomaly"] for _, a in answers.answers)
    sent = time.monotonic()
    await publish(mosquitto.port, "plant/pump1/readings", reading(t0 + 3, stuck=True))

    async def flagged() -> bool:
        return len(answers.answers) == 4

    await until(flagged, limit_s=10)
    received, answer = answers.answers[-1]
    assert answer["is_anomaly"] is True
    assert received - sent < 1.0
    assert _count(watcher, "scored") == 4
    stuck = (reading(t0 + i, stuck=True) for i in (4, 5))  # 3 anomalies: an alarm, an event
    await publish(mosquitto.port, "plant/pump1/readings", *stuck)

    async def event() -> bool:
        return bool(answers.events)

    await until(event, limit_s=5)
    assert answers.events[0]["open"] is True
    assert answers.events[0]["top_sensors"][0]["feature"] == "f3"


async def test_missing_channels_late_and_duplicate_readings_are_counted(
    running: tuple[Watcher, Answers], mosquitto: Mosquitto
) -> None:
    watcher, answers = running
    t0 = 1_700_000_000.0
    await publish(
        mosquitto.port,
        "plant/pump2/readings",
        reading(t0),
        reading(t0 + 1, drop="f5"),  # a missing channel
        b"not json",
        reading(t0 + 2),
        reading(t0 + 2),  # a duplicate
        reading(t0 + 1.5),  # late
        reading(t0 + 3),
    )

    async def settled() -> bool:
        counted = _count(watcher, "scored") == 3 and _count(watcher, "late") == 2
        return counted and len(answers.answers) == 3

    await until(settled, limit_s=10)
    assert _count(watcher, "invalid") == 2
    assert [a["timestamp"] for _, a in answers.answers] == [iso(t0 + i) for i in (0, 2, 3)]


async def test_many_readings_in_one_message_are_checked_and_counted_one_by_one(
    running: tuple[Watcher, Answers], mosquitto: Mosquitto
) -> None:
    watcher, answers = running
    t0 = 1_700_000_000.0
    batch = [orjson.loads(reading(t0 + i)) for i in range(4)]
    batch[1]["values"].pop("f5")  # a missing channel
    batch.insert(3, orjson.loads(reading(t0 + 2)))  # a duplicate
    batch.append({"ts": "not a time", "values": batch[0]["values"]})
    batch.append({"values": batch[0]["values"]})  # no ts
    await publish(
        mosquitto.port,
        "plant/pump3/readings",
        orjson.dumps({"readings": batch}),
        orjson.dumps({"readings": [orjson.loads(reading(t0 + 1.5))]}),  # late
        orjson.dumps({"readings": {"ts": t0}}),  # not a list: the message is invalid
    )

    async def settled() -> bool:
        counted = _count(watcher, "scored") == 3 and _count(watcher, "late") == 2
        return counted and len(answers.answers) == 3

    await until(settled, limit_s=10)
    assert _count(watcher, "invalid") == 4  # f5 missing, bad ts, no ts, the bad message
    assert [a["timestamp"] for _, a in answers.answers] == [iso(t0 + i) for i in (0, 2, 3)]


async def test_the_broker_going_away_and_coming_back(
    running: tuple[Watcher, Answers], mosquitto: Mosquitto
) -> None:
    watcher, _ = running
    mosquitto.stop()

    async def lost() -> bool:
        return bool(watcher.metrics.reconnects.labels("plant")._value.get() >= 1)

    await until(lost, limit_s=10)
    mosquitto.start()
    await until(_connected(watcher), limit_s=15)
    listener = Answers(mosquitto.port)
    task = asyncio.create_task(listener.listen())
    await asyncio.wait_for(listener.ready.wait(), 10)
    await publish(mosquitto.port, "plant/pump3/readings", reading(1_700_000_000.0, stuck=True))

    async def answered() -> bool:
        return bool(listener.answers)

    await until(answered, limit_s=10)
    assert listener.answers[0][1]["is_anomaly"] is True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

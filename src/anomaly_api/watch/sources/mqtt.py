"""MQTT source: readings ``{"ts": ..., "values": {channel: value}}`` on topic filters, one
a message or many (``{"readings": [reading, ...]}``: messages/s no longer bounds readings/s).

The stream id is the job's name and one level of the topic (``stream_level``). Messages
are received at QoS 1 into a queue; the scoring side takes whatever has arrived within
``_LINGER_S`` of the first (one reading when idle, a batch per stream under load), so
latency stays low and throughput high. A lost connection is retried with doubling
back-off up to ``reconnect_max``.

A message is acknowledged (PUBACK) only once its readings are scored: paho's manual
acknowledgement, which aiomqtt does not expose yet, so its paho client is reached
directly. A watcher killed between receipt and scoring leaves the message unacknowledged,
and the broker sends it again to the persistent session (``client_id``) when the watcher
is back. A message received on a connection that has since been lost is not acknowledged
on the new one (its id means nothing there): the broker sends it again, and the scorer
counts the copy as a duplicate (``late``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt
import orjson
from prometheus_client import Counter

from anomaly_api.service.errors import InvalidInputError
from anomaly_api.service.stream_timestamps import parse_timestamps
from anomaly_api.watch.config import MqttSourceConfig
from anomaly_api.watch.mqtt import connect
from anomaly_api.watch.scoring import Readings
from anomaly_api.watch.sources import stream_id_of

__all__ = ["MqttReading", "MqttSource", "group_readings", "parse_message"]

_log = logging.getLogger(__name__)
_BATCH = 4096
"""Readings taken from the queue at most per scoring round."""
_LINGER_S = 0.005
"""How long the first reading of a round waits for others: one append of many readings
costs little more than an append of one, so under load this multiplies throughput, and
an idle stream's answer comes 5 ms later."""

MqttReading = tuple[str, str, float, dict[str, float]]
"""(stream id, topic, timestamp, values)."""


@dataclass(frozen=True, slots=True)
class _Received:
    """One message's readings and how to acknowledge the message once they are scored."""

    readings: list[MqttReading]
    client: aiomqtt.Client
    mid: int
    qos: int


def parse_message(
    job: str, level: int, topic: str, payload: bytes
) -> tuple[list[MqttReading], int]:
    """A message's readings -- one ``{"ts", "values"}``, or many under ``"readings"`` --
    and how many of them are not readings (left out, the others kept); ``ValueError``
    when the message as a whole is not (not JSON, the topic lacks the stream's level)."""
    parts = topic.split("/")
    if level >= len(parts):
        raise ValueError(f"topic {topic!r} has no level {level}")
    data = orjson.loads(payload)
    items = [data]
    if isinstance(data, dict) and "readings" in data:
        items = data["readings"]
        if not isinstance(items, list) or len(data) != 1:
            raise ValueError('many readings are {"readings": [{"ts": ..., "values": {...}}, ...]}')
    stream = stream_id_of(job, [parts[level]])
    readings: list[MqttReading] = []
    for item in items:
        try:
            stamp, values = _reading(item)
        except (ValueError, InvalidInputError):
            continue
        readings.append((stream, topic, stamp, values))
    return readings, len(items) - len(readings)


def _reading(item: object) -> tuple[float, dict[str, float]]:
    """One ``{"ts": ..., "values": {channel: value}}`` (the values are checked by the
    scorer, as the stream endpoint checks them)."""
    if not isinstance(item, dict) or not isinstance(values := item.get("values"), dict):
        raise ValueError('a reading is {"ts": ..., "values": {channel: number}}')
    ts = item.get("ts")
    if type(ts) is float or type(ts) is int:  # the common case, without numpy
        if not math.isfinite(ts):
            raise ValueError("ts is not a finite number")
        return float(ts), values
    if not isinstance(ts, str):
        raise ValueError('a reading needs "ts": epoch seconds or ISO 8601')
    return float(parse_timestamps([ts], 1)[0]), values


class MqttSource:
    """Subscribes to a job's topics and hands batches of readings to ``handle``."""

    def __init__(
        self,
        job: str,
        config: MqttSourceConfig,
        *,
        invalid: Counter,
        reconnects: Counter,
    ) -> None:
        self.job = job
        self.config = config
        self.invalid = invalid
        self.reconnects = reconnects
        self.queue: asyncio.Queue[_Received] = asyncio.Queue()
        self._client: aiomqtt.Client | None = None
        """The connection messages are acknowledged on (None while disconnected)."""
        self.connected = asyncio.Event()

    async def run(self, handle: Callable[[list[Readings]], Awaitable[object]]) -> None:
        """Receive and score until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._receive())
            tasks.create_task(self._drain(handle))

    async def _receive(self) -> None:
        delay = 0.25
        default_id = f"anomaly-watch-{self.job}-{os.getpid()}"
        while True:
            try:
                client = connect(self.config, default_id=default_id)
                # before connecting: a persistent session's backlog comes right after CONNACK
                client._client.manual_ack_set(True)  # aiomqtt's paho client: no option for it yet
                async with client:
                    self._client = client
                    for topic in self.config.topics:
                        await client.subscribe(topic, qos=1)
                    self.connected.set()
                    delay = 0.25
                    async for message in client.messages:
                        self._take(client, message)
            except aiomqtt.MqttError as exc:
                self._client = None
                self.connected.clear()
                self.reconnects.inc()
                _log.warning("job %s: broker lost (%s); retrying in %.2fs", self.job, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.reconnect_max)

    def _take(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic, payload = message.topic.value, message.payload
        try:
            if not isinstance(payload, bytes | bytearray):
                raise ValueError("empty message")
            level = self.config.stream_level
            readings, invalid = parse_message(self.job, level, topic, bytes(payload))
        except ValueError as exc:
            _log.debug("job %s: %s: %s", self.job, topic, exc)
            readings, invalid = [], 1
        if invalid:
            self.invalid.inc(invalid)
        if not readings:
            self._ack_one(client, message.mid, message.qos)  # nothing to score: done with it
            return
        self.queue.put_nowait(_Received(readings, client, message.mid, message.qos))

    def _ack(self, received: list[_Received]) -> None:
        """Acknowledge, in arrival order, what came on the connection still open."""
        for item in received:
            self._ack_one(item.client, item.mid, item.qos)

    def _ack_one(self, client: aiomqtt.Client, mid: int, qos: int) -> None:
        if client is self._client and qos > 0:
            client._client.ack(mid, qos)

    async def _drain(self, handle: Callable[[list[Readings]], Awaitable[object]]) -> None:
        while True:
            taken = [await self.queue.get()]
            await asyncio.sleep(_LINGER_S)  # let the readings arriving with it join the batch
            readings = list(taken[0].readings)
            while len(readings) < _BATCH and not self.queue.empty():
                taken.append(self.queue.get_nowait())
                readings.extend(taken[-1].readings)
            try:
                await handle(group_readings(readings))
            except Exception:  # a bug in one batch must not end the job
                _log.exception("job %s: %d readings could not be scored", self.job, len(readings))
                self.invalid.inc(len(readings))
            self._ack(taken)


def group_readings(taken: list[MqttReading]) -> list[Readings]:
    """Readings per stream, in arrival order (the scorer skips the late ones)."""
    by_stream: dict[str, tuple[str, list[float], list[dict[str, float]]]] = {}
    for stream, topic, stamp, values in taken:
        entry = by_stream.setdefault(stream, (topic, [], []))
        entry[1].append(stamp)
        entry[2].append(values)
    return [
        Readings(stream_id=stream, labels={"topic": topic}, timestamps=stamps, rows=rows)
        for stream, (topic, stamps, rows) in by_stream.items()
    ]

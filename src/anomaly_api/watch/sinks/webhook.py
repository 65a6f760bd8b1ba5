"""Webhook sink: each event POSTed as JSON in Alertmanager's webhook shape.

The shape (``version: "4"``, ``status``, ``alerts[]`` with ``labels``, ``annotations``,
``startsAt``/``endsAt``) is what Alertmanager receivers and most chat bridges accept. An
event is sent when it opens (``firing``) and when it closes (``resolved``). Posts run
from a bounded queue in the background so a slow receiver never delays scoring; a post
is retried with doubling back-off, then dropped and counted as a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
from prometheus_client import Counter

from anomaly_api.service.event_answers import StreamEvent
from anomaly_api.watch.config import WebhookSinkConfig
from anomaly_api.watch.scoring import ScoredReadings

__all__ = ["WebhookSink", "alert_payload"]

_log = logging.getLogger(__name__)
_QUEUE = 1000
_NEVER = "0001-01-01T00:00:00Z"  # Alertmanager's "no end yet"


def alert_payload(
    job: str, stream: str, labels: dict[str, str], event: StreamEvent
) -> dict[str, Any]:
    """One event as an Alertmanager webhook message."""
    status = "firing" if event.open else "resolved"
    alert_labels = {
        "alertname": "AnomalyEvent",
        **labels,
        "watch_job": job,
        "stream": stream,
    }
    top = ", ".join(f"{s.feature} {s.share:.0%}" for s in event.top_sensors)
    return {
        "version": "4",
        "status": status,
        "receiver": "anomaly-watch",
        "groupKey": f"{job}/{stream}",
        "groupLabels": {"watch_job": job, "stream": stream},
        "commonLabels": alert_labels,
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [
            {
                "status": status,
                "labels": alert_labels,
                "annotations": {
                    "summary": f"{event.anomalies} anomalous readings on {stream}",
                    "top_sensors": top,
                    "peak_severity": f"{event.peak_severity:.3f}",
                    "event_id": event.id,
                },
                "startsAt": event.start,
                "endsAt": event.end or _NEVER,
                "fingerprint": f"{stream}/{event.id}",
            }
        ],
    }


class WebhookSink:
    """POSTs a job's events (opened, closed) to one URL, retrying, counting dead letters."""

    def __init__(self, job: str, config: WebhookSinkConfig, dead_letters: Counter) -> None:
        self.job = job
        self.config = config
        self.dead_letters = dead_letters
        self.client = httpx.AsyncClient(timeout=config.timeout)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE)
        self._sent: dict[str, bool] = {}
        """Event -> whether it was last sent open (so each state is sent once)."""
        self._worker = asyncio.create_task(self._post_all())

    async def write(self, scored: ScoredReadings, *, live: bool) -> None:
        stream = scored.readings.stream_id
        for event in scored.events:
            key = f"{stream}/{event.id}"
            if self._sent.get(key) == event.open:
                continue
            if event.open:
                self._sent[key] = True
            else:
                self._sent.pop(key, None)
            payload = alert_payload(self.job, stream, dict(scored.readings.labels), event)
            try:
                self.queue.put_nowait(payload)
            except asyncio.QueueFull:
                self.dead_letters.inc()

    async def _post_all(self) -> None:
        while True:
            payload = await self.queue.get()
            try:
                await self._post(payload)
            finally:
                self.queue.task_done()

    async def _post(self, payload: dict[str, Any]) -> None:
        delay = self.config.backoff
        for attempt in range(self.config.retries + 1):
            try:
                response = await self.client.post(self.config.url, json=payload)
            except httpx.HTTPError as exc:
                reason = repr(exc)
            else:
                if response.status_code < 300:
                    return
                reason = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # the receiver refuses this message: retrying will not help
            if attempt < self.config.retries:
                await asyncio.sleep(delay)
                delay *= 2
        _log.warning("webhook %s: event dropped (%s)", self.config.url, reason)
        self.dead_letters.inc()

    async def close(self) -> None:
        """Send what is queued (bounded by the retries), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout=self.config.timeout * 2)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        await self.client.aclose()

"""The shapes of a stream's events and their feedback (``/streams/{id}/events``).

Plain dataclasses like ``stream_answers`` (the HTTP response models are generated from
them), read from the records the stream store keeps (JSON, ``streams/events.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from anomaly_api.service.streams import StoredEvent

__all__ = [
    "EventFeedback",
    "EventSensor",
    "FeedbackLabel",
    "StreamEvent",
    "StreamEventsAnswer",
    "event_answer",
]

FeedbackLabel = Literal["false_alarm", "confirmed", "expected"]


@dataclass
class EventSensor:
    """One of the sensors that contributed most to an event."""

    feature: Annotated[str, Field(description="The sensor's (feature's) name.")]
    share: Annotated[
        float,
        Field(description="Its mean share of the event's anomalous readings, in [0, 1]."),
    ]
    read: Annotated[
        float, Field(description="What it read in the reading where its share was largest.")
    ]
    read_at: Annotated[str, Field(description="That reading's timestamp, ISO 8601 in UTC.")]
    expected_low: Annotated[
        float,
        Field(
            description="Low end of its expected range: the model's training median minus "
            "3 robust standard deviations (a time-aware model also judges the reading "
            "against its window: see each answer's `why`)."
        ),
    ]
    expected_high: Annotated[
        float, Field(description="High end: the training median plus 3 robust standard deviations.")
    ]
    why: Annotated[
        str | None,
        Field(
            description="The model's reason for this sensor in that reading (a time-aware "
            "model's `why`, e.g. `flat for 37 readings`); null when the model gave none (a "
            "point-wise model, or the sensor was not among that answer's `top_k`)."
        ),
    ] = None
    peak_z: Annotated[
        dict[str, float] | None,
        Field(
            description="Its largest deviation of each kind over the event's anomalous "
            "readings (a time-aware model's window features: `level`, `shift`, `residual`, "
            "..., in robust spreads, `|z|`): what a `false_alarm` or `expected` label says is "
            "normal for it; null when the model measures none (a point-wise model)."
        ),
    ] = None


@dataclass
class EventFeedback:
    """An operator's label of an event."""

    label: FeedbackLabel
    note: str
    by: Annotated[
        str,
        Field(
            description="Who sent it: `client:` or `admin:` and the first 12 hex digits of "
            "the SHA-256 of the API key (as listed in `API_KEY_HASHES`), or `anonymous` "
            "when the service has no keys."
        ),
    ]
    at: Annotated[str, Field(description="When it was received, ISO 8601 in UTC.")]


@dataclass
class StreamEvent:
    """Consecutive anomalous readings of a stream under its alarm policy (docs/streams.md)."""

    id: Annotated[str, Field(description="The event's id within its stream.")]
    start: Annotated[str, Field(description="Timestamp of its first anomalous reading.")]
    end: Annotated[
        str | None,
        Field(description="Timestamp of its last anomalous reading once closed; null while open."),
    ]
    open: Annotated[bool, Field(description="Still in progress.")]
    last_anomaly: Annotated[str, Field(description="Timestamp of its latest anomalous reading.")]
    peak_severity: Annotated[float, Field(description="Largest severity of its readings.")]
    readings: Annotated[
        int, Field(description="Readings from its first to its latest anomalous one.")
    ]
    anomalies: Annotated[int, Field(description="Anomalous readings among them.")]
    first_reading: Annotated[
        int, Field(description="Number of its first reading in the stream (0 = the first).")
    ]
    top_sensors: Annotated[
        list[EventSensor], Field(description="The 3 largest contributors, largest share first.")
    ]
    feedback: Annotated[
        EventFeedback | None, Field(description="The current label; null when none.")
    ]
    feedback_history: Annotated[
        list[EventFeedback],
        Field(description="Every label received, oldest first (a repeated label is not kept)."),
    ]


@dataclass
class StreamEventsAnswer:
    """``GET /streams/{stream_id}/events``: newest first."""

    stream_id: str
    events: list[StreamEvent]
    next_before: Annotated[
        str | None,
        Field(description="Pass as `before` for the next (older) page; null on the last one."),
    ]


def event_answer(stored: StoredEvent) -> StreamEvent:
    """An event as answered, from the store's record and feedback."""
    record: dict[str, Any] = json.loads(stored.record)
    history = [EventFeedback(**entry) for entry in json.loads(stored.feedback or b"[]")]
    record["top_sensors"] = [EventSensor(**sensor) for sensor in record["top_sensors"]]
    return StreamEvent(
        **record, feedback=history[-1] if history else None, feedback_history=history
    )

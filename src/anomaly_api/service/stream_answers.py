"""The shapes of the stream answers (``/predict/window`` and ``/streams/...``), defined once,
and ``stream_answers``, the one place a reading's ``StreamAnswer`` is built.

Plain dataclasses like ``anomaly_api.service.answers`` (same reasons: fast to build, orjson
writes them natively); the HTTP response models are generated from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from anomaly_api.service.answers import Contribution
from anomaly_api.service.prediction_columns import PredictionColumns

__all__ = [
    "Contribution",
    "ModelKind",
    "StreamAlarmAnswer",
    "StreamAnswer",
    "StreamReadingsAnswer",
    "StreamStateAnswer",
    "StreamSummary",
    "WindowAnswer",
    "stream_answers",
]

ModelKind = Literal["time-aware", "point-wise"]


@dataclass
class StreamAnswer:
    """The answer for one reading of a stream."""

    index: Annotated[int, Field(description="Position of the reading in the request.")]
    timestamp: Annotated[str, Field(description="The reading's time, ISO 8601 in UTC.")]
    is_anomaly: bool
    anomaly_score: Annotated[
        float, Field(description="Higher = more anomalous; positive = anomaly.")
    ]
    severity: Annotated[
        float, Field(description="In [0, 1): 0 when not flagged, towards 1 far past the threshold.")
    ]
    confidence: Annotated[float, Field(description="Confidence in the decision, in [0.5, 1].")]
    warming_up: Annotated[
        bool,
        Field(
            description="True when the stream had no full window yet (or restarted after a "
            "gap): the reading was scored point-wise. Always false for a point-wise model."
        ),
    ]
    contributions: Annotated[
        list[Contribution],
        Field(description="The largest contributors, largest share first (`top_k` of them)."),
    ]
    alarm: Annotated[
        bool,
        Field(
            description="This reading raised an alarm: with the anomalies before it, at least "
            "k anomalies within the policy's window, and no alarm within its cool-down "
            "(`alarm_policy`, default the `alarm_*` settings)."
        ),
    ] = False
    event_id: Annotated[
        str | None,
        Field(
            description="The stream's event this reading belongs to "
            "(`GET /streams/{id}/events`); null outside any, and always for `/predict/window`."
        ),
    ] = None


def stream_answers(
    timestamps: Sequence[str],
    predictions: PredictionColumns,
    warming_up: NDArray[np.bool_],
    contributions: Sequence[list[Contribution]],
) -> list[StreamAnswer]:
    """One ``StreamAnswer`` per reading (``index`` from 0, ``alarm`` false until the alarm
    policy sets it), from the predictions' columns."""
    return [
        StreamAnswer(
            index=i,
            timestamp=stamp,
            is_anomaly=flag,
            anomaly_score=score,
            severity=severity,
            confidence=confidence,
            warming_up=warm,
            contributions=shares,
        )
        for i, (stamp, flag, score, severity, confidence, warm, shares) in enumerate(
            zip(
                timestamps,
                predictions.is_anomaly.tolist(),
                predictions.anomaly_score.tolist(),
                predictions.severity.tolist(),
                predictions.confidence.tolist(),
                warming_up.tolist(),
                contributions,
                strict=True,
            )
        )
    ]


@dataclass
class WindowAnswer:
    """``POST /predict/window``: answers for the last reading, or for every reading."""

    answers: list[StreamAnswer]
    n_anomalies: int
    model_version: str
    model_kind: Annotated[ModelKind, Field(description="Which kind of model answered.")]
    window: Annotated[int, Field(description="Readings the model looks back over.")]
    inference_ms: float


@dataclass
class StreamSummary:
    """A stream's state right after the readings were appended."""

    readings_in_window: int
    window: Annotated[int, Field(description="Readings the model needs (a full window).")]
    total: Annotated[int, Field(description="Readings accepted since the stream (re)started.")]
    warming_up: Annotated[bool, Field(description="The window is not full yet.")]
    restarted: Annotated[
        bool,
        Field(description="These readings started the stream: `new_stream` or `model_changed`."),
    ]
    new_stream: Annotated[
        bool,
        Field(description="The stream did not exist before (new, expired or deleted)."),
    ]
    model_changed: Annotated[
        bool,
        Field(
            description="The stream existed under another fitted model (another trained "
            "version, window or features): it restarted. A threshold revision keeps it."
        ),
    ]
    backend: Annotated[str, Field(description="`memory` or `redis`.")]
    degraded: Annotated[
        bool, Field(description="Served from process memory because Redis is unreachable.")
    ]
    alarms: Annotated[int, Field(description="Alarms the stream has raised since it (re)started.")]
    threshold_raise: Annotated[
        float | None,
        Field(
            description="How far the stream's adaptive threshold is raised now (anomaly-score "
            "units; `GET /streams/{id}` says why); null when these readings did not adapt."
        ),
    ] = None


@dataclass
class StreamWidening:
    """One feedback's widening of a stream's threshold."""

    event_id: str
    amount: Annotated[
        float, Field(description="Its largest allowance: the most it raises any reading.")
    ]
    allowances: Annotated[
        dict[str, float],
        Field(
            description="Per sensor of the labelled event, in anomaly-score units: a reading's "
            "threshold rises by these weighted by the sensors' shares in it."
        ),
    ]
    bounds: Annotated[
        dict[str, dict[str, float]],
        Field(
            description="Per sensor, the labelled event's largest deviation of each kind "
            "(`peak_z`): its allowance applies to a reading only while each of the sensor's "
            "deviations is at most this plus 1; empty: at any size (a point-wise model)."
        ),
    ] = field(default_factory=dict)


@dataclass
class StreamAdaptationAnswer:
    """A stream's adaptive threshold (docs/tuning-false-alarms.md, Adaptation)."""

    enabled: Annotated[
        bool,
        Field(
            description="Appends adapt by default (`stream_adaptation`) and the served model "
            "can (it kept its scores)."
        ),
    ]
    level: Annotated[
        float | None,
        Field(description="Running median of the stream's normal anomaly scores (null: none)."),
    ]
    reference: Annotated[
        float | None,
        Field(description="The served model's median anomaly score on held-out normal data."),
    ]
    threshold_raise: Annotated[
        float | None,
        Field(description="`by_level` + `by_feedback`: how far the threshold is raised now."),
    ]
    by_level: Annotated[
        float | None,
        Field(description="How far `level` above `reference` raises it (capped, never < 0)."),
    ]
    by_feedback: Annotated[
        float | None,
        Field(
            description="How far feedback widens it at most: the largest sensor allowance, "
            "reached by a reading carried only by that sensor (capped)."
        ),
    ]
    learned: Annotated[int, Field(description="Readings the level learned from.")]
    frozen: Annotated[
        int,
        Field(description="Readings not learned from: anomalous, just after one, or warming up."),
    ]
    widenings: Annotated[
        list[StreamWidening],
        Field(description="The feedback widenings, oldest first (a `confirmed` label undoes one)."),
    ]


@dataclass
class StreamFollowAnswer:
    """A stream's followed level and spread (the time-aware model's ``follow`` feature)."""

    memory: Annotated[int, Field(description="The model's follow memory, in readings.")]
    level: Annotated[
        dict[str, float], Field(description="Per channel, the followed level (raw units).")
    ]
    spread: Annotated[
        dict[str, float],
        Field(
            description="Per channel, the followed spread: 1.2533 x the followed mean "
            "absolute deviation (raw units; the model floors it when it judges a reading)."
        ),
    ]


@dataclass
class StreamAlarmAnswer:
    """A stream's alarm state."""

    alarms: Annotated[int, Field(description="Alarms raised since the stream (re)started.")]
    readings_evaluated: Annotated[
        int, Field(description="Readings the alarm policy has evaluated.")
    ]
    last_alarm_reading: Annotated[
        int | None,
        Field(description="Number of the reading of the last alarm (0 = the first reading)."),
    ]
    last_alarm_timestamp: Annotated[
        str | None, Field(description="Its timestamp, ISO 8601 in UTC.")
    ]
    unit: Annotated[
        str | None, Field(description="Unit of the policy last applied (`readings`, `seconds`).")
    ]


@dataclass
class StreamReadingsAnswer:
    """``POST /streams/{stream_id}/readings``: one answer per appended reading."""

    stream_id: str
    answers: list[StreamAnswer]
    n_anomalies: int
    model_version: str
    model_kind: ModelKind
    stream: StreamSummary
    inference_ms: float


@dataclass
class StreamStateAnswer:
    """``GET /streams/{stream_id}``."""

    stream_id: str
    total: int
    readings_in_window: int
    n_features: int
    first_timestamp: str
    last_timestamp: str
    model_version: Annotated[
        str,
        Field(
            description="The served version when the window is the served model's (a "
            "threshold revision keeps it), else the trained version it was built for."
        ),
    ]
    expires_in_s: float
    backend: str
    degraded: bool
    alarm: StreamAlarmAnswer
    adaptation: StreamAdaptationAnswer
    follow: Annotated[
        StreamFollowAnswer | None,
        Field(
            description="The followed level and spread per channel after the latest reading "
            "(a model trained with a follow memory; null otherwise, or before any reading "
            "followed)."
        ),
    ] = None

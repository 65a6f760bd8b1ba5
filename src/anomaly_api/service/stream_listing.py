"""The shapes of ``GET /streams`` (live streams) and ``GET /streams/{id}/scores`` (a stream's
recent scores): what an operator's overview of the streams shows.

Plain dataclasses like ``stream_answers`` (the HTTP response models are generated from them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from anomaly_api.service.stream_timestamps import iso
from anomaly_api.service.streams import ListedStream, RecentScore

__all__ = [
    "ListedStreamAnswer",
    "RecentScoreAnswer",
    "StreamListAnswer",
    "StreamScoresAnswer",
    "list_answer",
    "scores_answer",
]


@dataclass
class ListedStreamAnswer:
    """One live stream of a page."""

    stream_id: str
    expires_in_s: Annotated[
        float, Field(description="Idle time left before it expires (each reading resets it).")
    ]


@dataclass
class StreamListAnswer:
    """``GET /streams``: a page of live streams, ordered by id."""

    streams: list[ListedStreamAnswer]
    next_after: Annotated[
        str | None,
        Field(description="Pass as `after` for the next page; null on the last page."),
    ]
    backend: Annotated[str, Field(description="`memory` or `redis`.")]
    degraded: Annotated[
        bool,
        Field(description="Redis is unreachable: the streams of this replica's memory are listed."),
    ]


@dataclass
class RecentScoreAnswer:
    """One scored reading of a stream."""

    timestamp: Annotated[str, Field(description="The reading's time, ISO 8601 in UTC.")]
    anomaly_score: Annotated[float, Field(description="The score it was answered with.")]
    threshold: Annotated[
        float,
        Field(description="The score at which it is flagged (0: scores are margins past it)."),
    ]
    is_anomaly: bool


@dataclass
class StreamScoresAnswer:
    """``GET /streams/{stream_id}/scores``: the stream's recent scores, oldest first."""

    stream_id: str
    scores: list[RecentScoreAnswer]
    capacity: Annotated[
        int, Field(description="Recent scores kept per stream (`stream_recent_scores`).")
    ]


def scores_answer(
    stream_id: str, found: Sequence[RecentScore], capacity: int
) -> StreamScoresAnswer:
    """The answer for the recent scores the store returned."""
    return StreamScoresAnswer(
        stream_id=stream_id,
        scores=[
            RecentScoreAnswer(iso(s.timestamp), s.score, s.threshold, s.is_anomaly) for s in found
        ],
        capacity=capacity,
    )


def list_answer(
    found: Sequence[ListedStream], limit: int, backend: str, degraded: bool
) -> StreamListAnswer:
    """The page for what the store returned (``limit + 1`` asked: one more means a next page)."""
    page = found[:limit]
    return StreamListAnswer(
        streams=[ListedStreamAnswer(s.stream_id, s.expires_in_s) for s in page],
        next_after=page[-1].stream_id if len(found) > limit and page else None,
        backend=backend,
        degraded=degraded,
    )

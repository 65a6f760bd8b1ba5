"""The shapes of the service's answers, defined once.

Plain dataclasses, built and serialised about as fast as dicts (orjson writes them
natively): ~3 µs a row to build and ~1.5 µs to serialise, against ~12 µs to build a
Pydantic model. Deliberately neither ``frozen`` (4x slower to build: every field goes
through ``object.__setattr__``) nor ``slots`` (orjson serialises slotted dataclasses ~5x
slower); measured on 1,000 answers with timeit. The HTTP API's response models
(``anomaly_api.api.schemas.PredictResponse`` and kin) are generated from these classes, so
the documented schema and the JSON sent can never drift apart. A new per-row field (as
``severity`` was) is added here and filled in ``DataPlane``; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

__all__ = ["Answer", "BatchAnswer", "Contribution", "DetectorVerdict"]


@dataclass
class DetectorVerdict:
    """What one detector of the ensemble said about the reading."""

    score: Annotated[float, Field(description="Its score_samples: lower = more abnormal.")]
    threshold: Annotated[float, Field(description="It votes anomaly when the score is below this.")]
    vote: Annotated[bool, Field(description="True when it votes anomaly.")]


@dataclass
class Contribution:
    """One feature's share of the reading's anomaly."""

    feature: Annotated[str, Field(description="The feature's name (see `/model/info`).")]
    share: Annotated[
        float,
        Field(
            description="Its share of the anomaly, in [0, 1]; the shares of all features "
            "of a reading sum to 1."
        ),
    ]
    why: Annotated[
        str | None,
        Field(
            description="A short reason, for answers that have one (time-aware stream "
            "answers); null for point-wise answers."
        ),
    ] = None


@dataclass
class Answer:
    """The ensemble's answer for one reading."""

    observation_id: str
    is_anomaly: Annotated[
        bool,
        Field(
            description="True when at least `min_votes` of the model's detectors vote "
            "anomaly (see `/model/info`; 2 of the 3 by default)."
        ),
    ]
    anomaly_score: Annotated[
        float, Field(description="Higher = more anomalous; positive = anomaly.")
    ]
    confidence: Annotated[float, Field(description="Confidence in the decision, in [0.5, 1].")]
    severity: Annotated[
        float,
        Field(
            description="How anomalous, in [0, 1): 0 for a normal reading, rising with "
            "`anomaly_score` (a / (1 + a) of its positive part)."
        ),
    ]
    contributions: Annotated[
        list[Contribution],
        Field(
            description="Each feature's share of the anomaly, largest first: every feature, "
            "or the `top_k` largest when the request asks for them."
        ),
    ]
    model_version: str
    inference_ms: Annotated[
        float,
        Field(description="Time spent answering (for a batch item: the whole batch), in ms."),
    ]
    detectors: dict[str, DetectorVerdict]
    cached: Annotated[
        bool, Field(description="True when the answer came from the prediction cache.")
    ]


@dataclass
class BatchAnswer:
    """Answers for a batch, in the order of its observations."""

    predictions: list[Answer]
    n_anomalies: int
    model_version: str
    inference_ms: float

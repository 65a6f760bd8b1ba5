"""Request and response bodies of the HTTP API (Pydantic v2).

Feature values are strict finite floats of magnitude at most 1e150: ``true`` is not 1.0,
``"1.5"`` is not a number, and ``null`` is not missing data. Limits that depend on
settings (batch cap, length of ``observation_id``) are checked when the body is read, in
``anomaly_api.api.body``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, JsonValue, Tag

from anomaly_api.artifacts import DetectorInfo, FeatureStats

NORMAL_FEATURES: list[JsonValue] = [0.5, 1.2, -0.3, 0.8, 1.5, 0.2, -0.1, 0.9]
ANOMALOUS_FEATURES: list[JsonValue] = [8.1, -5.3, 7.2, 9.0, -8.4, 6.1, 8.8, -7.2]
EXAMPLE_OBSERVATION_ID = "sensor_42_t1234"

MAX_ABS_FEATURE = 1e150
"""Largest feature magnitude accepted: the detectors square distances between readings,
and beyond ~1e154 those overflow float64 (no sensor reads anywhere near this)."""

FiniteFloat = Annotated[
    float, Field(strict=True, allow_inf_nan=False, ge=-MAX_ABS_FEATURE, le=MAX_ABS_FEATURE)
]


def _features_kind(value: Any) -> str | None:
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


Features = Annotated[
    Annotated[list[FiniteFloat], Tag("array")] | Annotated[dict[str, FiniteFloat], Tag("object")],
    Discriminator(
        _features_kind,
        custom_error_type="features_type",
        custom_error_message="features must be an array of numbers or an object of "
        "numbers keyed by feature name",
    ),
]


class PredictRequest(BaseModel):
    """One reading: its feature values and an optional caller-chosen identifier."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"features": NORMAL_FEATURES, "observation_id": EXAMPLE_OBSERVATION_ID}]
        },
    )

    features: Features = Field(
        description="The feature values in the model's order (see `/model/info`), or an "
        "object keyed by feature name holding every feature."
    )
    observation_id: str | None = Field(
        default=None,
        min_length=1,
        description="Echoed back; generated when absent. At most "
        "`max_observation_id_length` characters (default 128).",
    )


class PredictBatchRequest(BaseModel):
    """Several readings scored together."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "observations": [
                        {"features": NORMAL_FEATURES, "observation_id": "sensor_42_t1234"},
                        {"features": ANOMALOUS_FEATURES, "observation_id": "sensor_42_t1235"},
                    ]
                }
            ]
        },
    )

    observations: list[PredictRequest] = Field(
        min_length=1, description="1 to `max_batch_rows` readings (default 1000)."
    )


class DetectorVerdict(BaseModel):
    """What one detector of the ensemble said about the reading."""

    score: float = Field(description="Its score_samples: lower = more abnormal.")
    threshold: float = Field(description="It votes anomaly when the score is below this.")
    vote: bool = Field(description="True when it votes anomaly.")


class PredictResponse(BaseModel):
    """The ensemble's answer for one reading."""

    observation_id: str
    is_anomaly: bool = Field(description="True when at least 2 of the 3 detectors vote anomaly.")
    anomaly_score: float = Field(description="Higher = more anomalous; positive = anomaly.")
    confidence: float = Field(description="Confidence in the decision, in [0.5, 1].")
    model_version: str
    inference_ms: float = Field(
        description="Time spent answering (for a batch item: the whole batch), in ms."
    )
    detectors: dict[str, DetectorVerdict]
    cached: bool = Field(description="True when the answer came from the prediction cache.")


class PredictBatchResponse(BaseModel):
    """Answers for a batch, in the order of its observations."""

    predictions: list[PredictResponse]
    n_anomalies: int
    model_version: str
    inference_ms: float


class CacheHealth(BaseModel):
    """The prediction cache as seen by the health check."""

    backend: str = Field(description="`memory` or `redis`.")
    ok: bool


class HealthResponse(BaseModel):
    """Readiness of the service; ``degraded`` still serves predictions (without the cache)."""

    status: Literal["ok", "degraded", "unavailable"]
    model_loaded: bool
    model_version: str | None
    cache: CacheHealth
    uptime_s: float


class LivenessResponse(BaseModel):
    """The process is up and answering."""

    status: Literal["alive"] = "alive"


class ReadinessResponse(BaseModel):
    """Whether predictions can be served (a model is loaded)."""

    ready: bool
    model_version: str | None


class ModelInfoResponse(BaseModel):
    """The served model version and everything known about it."""

    model_config = ConfigDict(protected_namespaces=())

    version: str
    created_at: datetime
    n_features: int
    feature_names: list[str]
    feature_stats: dict[str, FeatureStats]
    detectors: list[DetectorInfo]
    min_votes: int
    vote_rule: str
    score_definition: str
    metrics: dict[str, Any] | None
    library_versions: dict[str, str]
    inference_backend: str


class ErrorInfo(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="Human-readable explanation.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems, when there are several."
    )
    request_id: str | None = Field(
        default=None, description="The request's X-Request-ID, to find it in the logs."
    )


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorInfo

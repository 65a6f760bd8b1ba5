"""The ceiling: a bare FastAPI endpoint taking ``/predict``'s body, answering constants."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field


class Body(BaseModel):
    """``{"features": [floats], "observation_id": "..."}``, as the service accepts."""

    features: list[float] = Field(min_length=1, max_length=1000)
    observation_id: str | None = None


class Answer(BaseModel):
    """The seed's response fields."""

    observation_id: str
    is_anomaly: bool
    anomaly_score: float
    confidence: float
    model_version: str
    inference_ms: float


app = FastAPI()


@app.post("/predict")
async def create_prediction(body: Body) -> Answer:
    """Validate the body and answer without any model."""
    return Answer(
        observation_id=body.observation_id or "generated",
        is_anomaly=False,
        anomaly_score=-1.0,
        confidence=0.73,
        model_version="bare",
        inference_ms=0.0,
    )


@app.get("/health/ready")
async def read_readiness() -> dict[str, bool]:
    """Ready as soon as the process serves."""
    return {"ready": True}

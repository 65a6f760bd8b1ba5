"""``GET /model/info``: the served model version and its provenance; ``GET /model/thresholds``:
the trade-off table to choose thresholds from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from anomaly_api.api.deps import PredictorDep, SettingsDep
from anomaly_api.api.openapi import ERROR_RESPONSES
from anomaly_api.api.schemas import ModelInfoResponse, model_info
from anomaly_api.training.calibration import stated
from anomaly_api.training.tuning import expected_rates, tradeoff_table

router = APIRouter(prefix="/model", tags=["model"])


@router.get("/info", response_model=ModelInfoResponse, responses={503: ERROR_RESPONSES[503]})
async def read_model_info(predictor: PredictorDep, settings: SettingsDep) -> dict[str, Any]:
    """Version, features with training statistics, detectors and thresholds, metrics."""
    return model_info(predictor.manifest, settings.inference_backend)


@router.get("/thresholds", responses={503: ERROR_RESPONSES[503]})
async def read_thresholds(predictor: PredictorDep) -> dict[str, Any]:
    """The served thresholds, what they are expected to flag, and per detector a table of
    candidate thresholds with their false-positive rate (and precision/recall when the
    model kept labelled validation rows). ``available: false`` with a ``reason`` when the
    model kept no scores to compute it from. For a time-aware model: its window detector.
    ``false_alarm_rate``: the rate expected on later normal readings, with its 95% upper
    bound (``method: "unknown"`` for a model trained before it was recorded)."""
    scores = predictor.references.scores
    tunable = predictor.tunable
    current = dict(zip(tunable.names, tunable.thresholds.tolist(), strict=True))
    base: dict[str, Any] = {
        "model_version": predictor.version,
        "parent_version": predictor.manifest.parent_version,
        "model_kind": predictor.kind,
        "thresholds": current,
        "min_votes": tunable.min_votes,
        "false_alarm_rate": stated(predictor.manifest.metrics),
    }
    if scores is None:
        return {
            **base,
            "available": False,
            "reason": f"model {predictor.version!r} kept no detector scores; retrain it",
        }
    expected = expected_rates(scores, tunable.thresholds, tunable.decide())
    return {
        **base,
        "available": True,
        "labelled": scores.has_labels,
        "expected": expected,
        "tuning": predictor.manifest.tuning,
        "tradeoff": tradeoff_table(scores),
    }

"""Answers as table columns: the bulk scorer's columns and the pandas helper ``score_frame``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from anomaly_api.client._models import Prediction

__all__ = [
    "FRAME_COLUMNS",
    "answer_columns",
    "frame_record",
    "frame_rows",
    "prediction_record",
    "scored_frame",
]

FRAME_COLUMNS: Final = ("severity", "top_feature", "top_share")
"""Columns ``score_frame`` adds after ``answer_columns``: the severity, and the feature
with the largest share of the anomaly with that share (None and NaN without contributions)."""


def answer_columns(detector_names: Iterable[str]) -> list[str]:
    """Columns a scored table gains, in order (bulk scoring and ``score_frame`` agree;
    ``score_frame`` adds ``FRAME_COLUMNS`` after them).

    One score column per detector, named ``<detector>_score``.
    """
    return ["is_anomaly", "anomaly_score", "confidence", *(f"{n}_score" for n in detector_names)]


def prediction_record(prediction: Prediction, detector_names: Sequence[str]) -> list[Any]:
    """One row of ``answer_columns(detector_names)`` for a ``Prediction``."""
    return [
        prediction.is_anomaly,
        prediction.anomaly_score,
        prediction.confidence,
        *(prediction.detectors[name].score for name in detector_names),
    ]


def frame_record(prediction: Prediction, detector_names: Sequence[str]) -> list[Any]:
    """One row of ``score_frame``'s columns: ``prediction_record`` and ``FRAME_COLUMNS``."""
    top = prediction.contributions[0] if prediction.contributions else None
    return [
        *prediction_record(prediction, detector_names),
        prediction.severity,
        None if top is None else top.feature,
        float("nan") if top is None else top.share,
    ]


def frame_rows(frame: Any, feature_names: Sequence[str]) -> list[list[float]]:
    """The feature columns of a pandas DataFrame as row lists in model order.

    Raises ``KeyError`` naming the first missing feature column.
    """
    missing = [name for name in feature_names if name not in frame.columns]
    if missing:
        raise KeyError(
            f"feature column {missing[0]!r} not found; columns are {list(frame.columns)}"
        )
    values: list[list[float]] = frame[list(feature_names)].astype("float64").values.tolist()
    return values


def scored_frame(
    frame: Any, detector_names: Sequence[str], predictions: Sequence[Prediction]
) -> Any:
    """``frame`` with the answer's columns added (pandas imported lazily)."""
    import pandas as pd

    answers = pd.DataFrame(
        [frame_record(p, detector_names) for p in predictions],
        columns=[*answer_columns(detector_names), *FRAME_COLUMNS],
        index=frame.index,
    )
    answers["is_anomaly"] = answers["is_anomaly"].astype(bool)
    return pd.concat([frame, answers], axis=1)

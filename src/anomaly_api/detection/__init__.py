"""Pure machine learning: detectors and their combination. Imports numpy/scikit-learn only."""

from anomaly_api.detection.ensemble import (
    DETECTOR_NAMES,
    SCORE_DEFINITION,
    AnomalyEnsemble,
    EnsembleOutput,
)
from anomaly_api.detection.zscore import ZScoreDetector

__all__ = [
    "DETECTOR_NAMES",
    "SCORE_DEFINITION",
    "AnomalyEnsemble",
    "EnsembleOutput",
    "ZScoreDetector",
]

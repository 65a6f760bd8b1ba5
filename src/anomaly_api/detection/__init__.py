"""Pure machine learning: detectors and their combination. Imports numpy/scikit-learn only."""

from anomaly_api.detection.contributions import top_contributions
from anomaly_api.detection.ensemble import (
    DETECTOR_NAMES,
    MEMBERS,
    SCORE_DEFINITION,
    AnomalyEnsemble,
    EnsembleOutput,
    validate_members,
)
from anomaly_api.detection.pca_monitor import PCAMonitorDetector
from anomaly_api.detection.zscore import ZScoreDetector

__all__ = [
    "DETECTOR_NAMES",
    "MEMBERS",
    "SCORE_DEFINITION",
    "AnomalyEnsemble",
    "EnsembleOutput",
    "PCAMonitorDetector",
    "ZScoreDetector",
    "top_contributions",
    "validate_members",
]

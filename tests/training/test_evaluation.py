"""Metrics of the detectors and the ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from anomaly_api.detection import DETECTOR_NAMES, AnomalyEnsemble
from anomaly_api.training.evaluation import evaluate_model, format_report


@pytest.fixture(scope="module")
def model() -> AnomalyEnsemble:
    X = np.random.default_rng(0).normal(size=(500, 3))
    return AnomalyEnsemble(n_estimators=30, random_state=0).fit(X)


def test_obvious_anomalies_give_perfect_scores(model: AnomalyEnsemble) -> None:
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(scale=0.3, size=(90, 3)), rng.normal(loc=12.0, size=(10, 3))])
    y = np.array([0] * 90 + [1] * 10)
    kinds = np.array(["normal"] * 90 + ["spike"] * 5 + ["level_shift"] * 5)
    report = evaluate_model(model, X, y, kinds)
    assert report["n_samples"] == 100
    assert report["n_anomalies"] == 10
    assert set(report["detectors"]) == {*DETECTOR_NAMES, "ensemble"}
    for values in report["detectors"].values():
        assert values["roc_auc"] == 1.0
        assert values["pr_auc"] == pytest.approx(1.0)
        assert values["recall"] == 1.0
        assert values["fpr"] == 0.0
    assert report["per_kind_recall"]["spike"] == {
        "n": 5,
        **dict.fromkeys([*DETECTOR_NAMES, "ensemble"], 1.0),
    }
    table = format_report(report)
    assert "ensemble" in table
    assert "level_shift" in table


def test_metrics_follow_the_votes(model: AnomalyEnsemble) -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(scale=1.5, size=(400, 3))
    y = (np.abs(X).max(axis=1) > 2.5).astype(np.int64)
    report = evaluate_model(model, X, y)
    flagged = model.predict(X) == -1
    ensemble = report["detectors"]["ensemble"]
    tp = int((flagged & (y == 1)).sum())
    assert ensemble["precision"] == pytest.approx(tp / flagged.sum())
    assert ensemble["recall"] == pytest.approx(tp / y.sum())
    assert ensemble["fpr"] == pytest.approx((flagged & (y == 0)).sum() / (y == 0).sum())
    assert "per_kind_recall" not in report


def test_one_class_is_refused(model: AnomalyEnsemble) -> None:
    with pytest.raises(ValueError, match="both normal and anomalous"):
        evaluate_model(model, np.zeros((5, 3)), np.zeros(5, dtype=np.int64))

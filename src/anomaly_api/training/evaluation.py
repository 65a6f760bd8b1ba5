"""Metrics of each detector and of the ensemble on labelled data, as JSON and as a table.

For every detector and for the ensemble: precision, recall, F1 and false-positive rate
of its votes at the tuned thresholds, and ROC-AUC and PR-AUC (average precision) of its
continuous score. With anomaly kinds, the recall of every kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from anomaly_api.data.anomalies import NORMAL_KIND
from anomaly_api.detection import AnomalyEnsemble

ENSEMBLE = "ensemble"
_METRICS = ("precision", "recall", "f1", "fpr", "roc_auc", "pr_auc")


def _metrics(
    y: NDArray[np.int64], flagged: NDArray[np.bool_], anomaly_score: NDArray[np.float64]
) -> dict[str, float]:
    normal = y == 0
    return {
        "precision": float(precision_score(y, flagged, zero_division=0.0)),
        "recall": float(recall_score(y, flagged, zero_division=0.0)),
        "f1": float(f1_score(y, flagged, zero_division=0.0)),
        "fpr": float(flagged[normal].mean()) if normal.any() else 0.0,
        "roc_auc": float(roc_auc_score(y, anomaly_score)),
        "pr_auc": float(average_precision_score(y, anomaly_score)),
    }


def evaluate_model(
    model: AnomalyEnsemble,
    X: NDArray[np.float64],
    y: NDArray[np.int64],
    kinds: NDArray[np.str_] | None = None,
) -> dict[str, Any]:
    """Evaluate a fitted ensemble on labelled rows (both classes must be present)."""
    if len(np.unique(y)) < 2:
        raise ValueError("evaluation needs both normal and anomalous rows")
    output = model.explain(X)
    flagged = np.column_stack([output.votes, output.is_anomaly])
    # Each detector's continuous score: its score_samples, negated (higher = worse).
    scores = np.column_stack([-output.scores, output.anomaly_score])
    names = [*model.detectors_, ENSEMBLE]
    report: dict[str, Any] = {
        "n_samples": len(y),
        "n_anomalies": int(y.sum()),
        "detectors": {
            name: _metrics(y, flagged[:, i], scores[:, i]) for i, name in enumerate(names)
        },
    }
    if kinds is not None:
        report["per_kind_recall"] = {
            str(kind): {
                "n": int((kinds == kind).sum()),
                **{name: float(flagged[kinds == kind, i].mean()) for i, name in enumerate(names)},
            }
            for kind in sorted(set(kinds[y == 1].tolist()) - {NORMAL_KIND})
        }
    return report


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of an ``evaluate_model`` report."""
    lines = [
        f"{report['n_samples']} rows, {report['n_anomalies']} anomalies",
        f"{'detector':<22}" + "".join(f"{m:>10}" for m in _METRICS),
    ]
    for name, values in report["detectors"].items():
        lines.append(f"{name:<22}" + "".join(f"{values[m]:>10.3f}" for m in _METRICS))
    per_kind = report.get("per_kind_recall")
    if per_kind:
        names = list(report["detectors"])
        lines += ["", "recall by anomaly kind"]
        lines.append(f"{'kind':<22}{'n':>6}" + "".join(f"{n[:12]:>14}" for n in names))
        for kind, values in per_kind.items():
            lines.append(
                f"{kind:<22}{values['n']:>6}" + "".join(f"{values[n]:>14.3f}" for n in names)
            )
    return "\n".join(lines)

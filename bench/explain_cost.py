"""Cost of contributions and severity per row against scoring: ``python -m bench.explain_cost``.

For the default model on the synthetic data (8 features) and the four-member model on TEP
(52 features): the fast path's ``detector_scores`` (compiled C kernel) versus what ``explain``
adds on top of ``combine`` (the contributions and the severity), for 1 and 1,000 rows.
Medians of ``timeit`` repeats; writes ``bench/results/explain-cost.json``.
"""

from __future__ import annotations

import json
import timeit
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from anomaly_api.data.loading import synthetic_dataset
from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.detection.fast import compile_scorer

ROOT = Path(__file__).resolve().parents[1]
TEP = ROOT / ".." / "shared" / "datasets" / "tep"


def _median_seconds(call: Any, number: int) -> float:
    return float(np.median(timeit.repeat(call, number=number, repeat=7)) / number)


def measure(model: AnomalyEnsemble, X: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Seconds per call of scoring and of the explanation, for 1 and 1,000 rows."""
    scorer = compile_scorer(model, "c")
    result: dict[str, Any] = {}
    for n in (1, 1000):
        rows = np.ascontiguousarray(X[:n])
        scores = scorer.detector_scores(rows)
        number = 200 if n == 1 else 10
        scoring = _median_seconds(lambda r=rows: scorer.detector_scores(r), number)
        combine = _median_seconds(lambda s=scores: model.combine(s), number)
        # What the rows add to combine: the contributions (severity is one more ufunc).
        extra = _median_seconds(lambda r=rows, s=scores: model.combine(s, r), number) - combine
        result[f"rows_{n}"] = {
            "scoring_us": scoring * 1e6,
            "combine_us": combine * 1e6,
            "contributions_and_severity_us": extra * 1e6,
            "share_of_scoring": extra / scoring,
        }
    return result


def main() -> None:
    """Measure both models and write the JSON."""
    synthetic = synthetic_dataset(seed=42)
    default = AnomalyEnsemble(random_state=42).fit(synthetic.X[synthetic.y == 0])
    results = {"default_synthetic_8_features": measure(default, synthetic.X[::7])}
    train = TEP / "train_normal.csv"
    if train.is_file():
        frame = pd.read_csv(train)
        features = [c for c in frame.columns if c.startswith(("xmeas_", "xmv_"))]
        four = AnomalyEnsemble(
            detectors=("isolation_forest", "local_outlier_factor", "zscore", "pca"),
            random_state=42,
        ).fit(frame[features].to_numpy(np.float64))
        test = pd.read_csv(TEP / "test_fault01.csv")[features].to_numpy(np.float64)
        results["four_members_tep_52_features"] = measure(four, test)
    out = ROOT / "bench" / "results" / "explain-cost.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""What severity and contributions add to an API answer, per row: ``python -m bench.answer_cost``.

The default model on the synthetic data (8 features), numba fast path, 1 and 1,000 rows.
"Scoring" is what the service did per batch before the answers had the two fields: the
detectors' scores and ``combine(scores)``. "Added" is everything the fields cost on the
request path, measured piece by piece:

* ``combine(scores, X)`` minus ``combine(scores)`` (the contributions and the severity);
* turning the severity and the share rows into Python floats and tuples (``Predictor``);
* the sorted ``Contribution`` lists (``DataPlane``: one stable argsort of the batch);
* serialising the two fields with orjson.

Medians of 7 ``timeit`` repeats; writes ``bench/results/answer-cost.json``.
"""

from __future__ import annotations

import json
import timeit
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from anomaly_api.data.loading import synthetic_dataset
from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.detection.fast import compile_scorer
from anomaly_api.service.dataplane import _sorted_contributions
from anomaly_api.service.prediction import Prediction

ROOT = Path(__file__).resolve().parents[1]


def _median_seconds(call: Any, number: int) -> float:
    return float(np.median(timeit.repeat(call, number=number, repeat=7)) / number)


def measure(model: AnomalyEnsemble, X: np.ndarray[Any, Any], names: list[str]) -> dict[str, Any]:
    """Microseconds per batch of scoring and of each added piece, for 1 and 1,000 rows."""
    scorer = compile_scorer(model, "numba")
    result: dict[str, Any] = {}
    for n in (1, 1000):
        rows = np.ascontiguousarray(X[:n])
        scores = scorer.detector_scores(rows)
        out = model.combine(scores, rows)
        assert out.contributions is not None
        shares = out.contributions
        predictions = [
            Prediction(
                is_anomaly=False,
                anomaly_score=0.0,
                confidence=1.0,
                scores=(),
                votes=(),
                severity=severity,
                shares=tuple(row),
            )
            for severity, row in zip(out.severity.tolist(), shares.tolist(), strict=True)
        ]
        contributions = _sorted_contributions(names, predictions, None)
        fields = [
            {"severity": p.severity, "contributions": c}
            for p, c in zip(predictions, contributions, strict=True)
        ]
        number = 2000 if n == 1 else 20

        def scoring(r: Any = rows) -> object:
            return model.combine(scorer.detector_scores(r))

        combine = _median_seconds(lambda s=scores: model.combine(s), number)
        pieces = {
            "contributions_and_severity_in_combine": _median_seconds(
                lambda s=scores, r=rows: model.combine(s, r), number
            )
            - combine,
            "to_python": _median_seconds(
                lambda o=out: [tuple(r) for r in o.contributions.tolist()] + o.severity.tolist(),
                number,
            ),
            "sorted_contributions": _median_seconds(
                lambda p=predictions: _sorted_contributions(names, p, None), number
            ),
            "sorted_contributions_top_3": _median_seconds(
                lambda p=predictions: _sorted_contributions(names, p, 3), number
            ),
            "serialise": _median_seconds(lambda f=fields: orjson.dumps(f), number),
        }
        scoring_s = _median_seconds(scoring, number)
        added = sum(v for k, v in pieces.items() if k != "sorted_contributions_top_3")
        result[f"rows_{n}"] = {
            "scoring_us": scoring_s * 1e6,
            **{f"{k}_us": v * 1e6 for k, v in pieces.items()},
            "added_us": added * 1e6,
            "added_per_row_us": added * 1e6 / n,
            "share_of_scoring": added / scoring_s,
        }
    return result


def main() -> None:
    """Measure the default model and write the JSON."""
    synthetic = synthetic_dataset(seed=42)
    default = AnomalyEnsemble(random_state=42).fit(synthetic.X[synthetic.y == 0])
    names = [f"f{i}" for i in range(synthetic.X.shape[1])]
    results = {"default_synthetic_8_features": measure(default, synthetic.X[::7], names)}
    out = ROOT / "bench" / "results" / "answer-cost.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""In-process timings: model scoring alone (fast vs reference) and a batch's parse/score split."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.detection.fast import FastScorer


def median_ms(fn: Callable[[], object], repeats: int, budget_s: float) -> float:
    """Median wall time of ``fn`` in ms over ``repeats`` calls (fewer if over budget)."""
    fn()  # warm-up
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1e3)
        if time.perf_counter() > deadline:
            break
    return statistics.median(times)


def fast_path(model: AnomalyEnsemble, scorer: FastScorer, X: NDArray[np.float64]) -> object:
    """What the service runs per call: the fast scores, then the ensemble's decision rule."""
    return model.combine(scorer.detector_scores(X))


def model_scoring(
    model: AnomalyEnsemble,
    scorer: FastScorer,
    numpy_scorer: FastScorer,
    X: NDArray[np.float64],
    *,
    smoke: bool,
) -> dict[str, Any]:
    """``detector_scores`` + ``combine`` for 1, 100 and 1,000 rows: C kernel, NumPy, scikit-learn.

    Single-threaded except the neighbour search, which uses two threads (C scan) or every
    core (KD-tree, NumPy backend) from 64 rows on. ``python -m bench.kernel`` compares
    the kernels in more detail.
    """
    results: dict[str, Any] = {}
    for n_rows in (1, 100, 1000):
        rows = np.ascontiguousarray(X[:n_rows])
        repeats = 20 if smoke else (2000 if n_rows == 1 else 200)
        budget = 0.5 if smoke else 10.0
        fast = median_ms(partial(fast_path, model, scorer, rows), repeats, budget)
        numpy = median_ms(partial(fast_path, model, numpy_scorer, rows), repeats, budget)
        reference = median_ms(partial(model.explain, rows), repeats // 4 or 1, budget)
        results[str(n_rows)] = {
            "fast_ms": fast,
            "numpy_ms": numpy,
            "reference_ms": reference,
            "speedup": reference / fast,
            "numpy_speedup": reference / numpy,
        }
    return results


def batch_split(
    batch_body: bytes, model: AnomalyEnsemble, scorer: FastScorer, *, smoke: bool
) -> dict[str, float]:
    """Where a 1,000-row batch's server time goes: JSON parse, validation, matrix, scoring."""
    from anomaly_api.api.schemas import PredictBatchRequest

    repeats = 10 if smoke else 200
    data = orjson.loads(batch_body)
    request = PredictBatchRequest.model_validate(data)
    rows = [observation.features for observation in request.observations]
    X = np.array(rows, dtype=np.float64)
    return {
        "parse_ms": median_ms(lambda: orjson.loads(batch_body), repeats, 5.0),
        "validate_ms": median_ms(lambda: PredictBatchRequest.model_validate(data), repeats, 5.0),
        "to_matrix_ms": median_ms(lambda: np.array(rows, dtype=np.float64), repeats, 5.0),
        "score_fast_ms": median_ms(partial(fast_path, model, scorer, X), repeats, 5.0),
        "score_reference_ms": median_ms(lambda: model.explain(X), repeats // 4 or 1, 5.0),
    }

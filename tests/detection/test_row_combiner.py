"""``RowCombiner`` (one row, plain floats) gives bit for bit what ``combine`` gives."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.detection.ensemble import _numpy_sum


@pytest.fixture(scope="module", params=[3, 8, 9, 17])
def model(request: pytest.FixtureRequest) -> AnomalyEnsemble:
    rng = np.random.default_rng(request.param)
    X = rng.normal(size=(600, request.param)) * rng.uniform(0.01, 100.0, size=request.param)
    return AnomalyEnsemble(n_estimators=20, n_neighbors=10).fit(X)


def _rows(model: AnomalyEnsemble) -> NDArray[np.float64]:
    """Ordinary, far, huge and median rows, in raw units."""
    rng = np.random.default_rng(7)
    n = model.n_features_in_
    scaled = np.vstack(
        [
            rng.normal(size=(400, n)),
            rng.normal(scale=8.0, size=(200, n)),
            rng.normal(size=(50, n)) * 10.0 ** rng.integers(-6, 150, size=(50, n)),
            np.zeros((3, n)),  # at the median: every contribution weight is 0
        ]
    )
    huge = np.zeros((2, n))
    huge[0, 0] = 1e300  # weight overflows to infinity
    huge[1, :2] = 1e300  # two infinite weights share the anomaly
    return np.vstack([scaled * model.scale_ + model.center_, huge * model.scale_ + model.center_])


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def test_every_field_matches_combine_bit_for_bit(model: AnomalyEnsemble) -> None:
    combiner = model.row_combiner()
    assert combiner is not None
    X = _rows(model)
    with np.errstate(all="ignore"):
        scores = model.detector_scores(np.clip(X, -1e150, 1e150))
        scores[-2:] = [[-1e300, -math.inf, -1e300], [-math.inf, -math.inf, 0.0]]  # extremes
        out = model.combine(scores, X)
    assert out.contributions is not None
    for i in range(X.shape[0]):
        row = combiner(scores[i].tolist(), X[i].tolist())
        assert row.votes == tuple(out.votes[i].tolist())
        assert row.is_anomaly == bool(out.is_anomaly[i])
        assert row.scores == tuple(scores[i].tolist())
        for ours, theirs in [
            (row.anomaly_score, out.anomaly_score[i]),
            (row.confidence, out.confidence[i]),
            (row.severity, out.severity[i]),
            *zip(row.contributions, out.contributions[i].tolist(), strict=True),
        ]:
            assert _same(ours, float(theirs)), (i, ours, theirs)


@pytest.mark.parametrize("n", [1, 5, 7, 8, 9, 15, 16, 17, 31, 64, 128])
def test_the_sum_follows_numpy_order(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.normal(size=(2000, n)) ** 2 * 10.0 ** rng.integers(-8, 8, size=(2000, n))
    expected = values.sum(axis=1, keepdims=True)[:, 0]
    assert [_numpy_sum(row) for row in values.tolist()] == expected.tolist()


def test_models_with_the_pca_member_use_combine() -> None:
    X = np.random.default_rng(0).normal(size=(300, 4))
    model = AnomalyEnsemble(detectors=("zscore", "pca"), min_votes=1).fit(X)
    assert model.row_combiner() is None

"""Which feature, and how bad: contributions sum to 1, severity is monotone and 0 when normal."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from anomaly_api.detection import AnomalyEnsemble, top_contributions
from anomaly_api.detection.contributions import feature_contributions, severity_from_score

ALL = ("isolation_forest", "local_outlier_factor", "zscore", "pca")


@pytest.fixture(scope="module")
def correlated() -> NDArray[np.float64]:
    """Four features, the first two strongly correlated, in very different units."""
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(1500, 1))
    X = np.hstack([latent, latent, rng.normal(size=(1500, 2))])
    X[:, :2] += 0.1 * rng.normal(size=(1500, 2))
    result: NDArray[np.float64] = X * np.array([1.0, 100.0, 0.01, 5.0])
    return result


@pytest.fixture(
    scope="module", params=[("isolation_forest", "local_outlier_factor", "zscore"), ALL]
)
def model(request: pytest.FixtureRequest, correlated: NDArray[np.float64]) -> AnomalyEnsemble:
    return AnomalyEnsemble(detectors=request.param, n_estimators=30).fit(correlated)


def test_shares_are_non_negative_and_sum_to_one(
    model: AnomalyEnsemble, correlated: NDArray[np.float64]
) -> None:
    rng = np.random.default_rng(1)
    X = np.vstack([correlated[:200], correlated[:200] * rng.normal(scale=3.0, size=(200, 4))])
    out = model.explain(X)
    assert out.contributions is not None
    assert out.contributions.shape == X.shape
    assert (out.contributions >= 0).all()
    np.testing.assert_allclose(out.contributions.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_the_feature_that_moved_comes_first(
    model: AnomalyEnsemble, correlated: NDArray[np.float64]
) -> None:
    row = model.center_.copy()
    row[3] += 8.0 * model.scale_[3]  # only the fourth feature is far off
    out = model.explain(row[None, :])
    assert out.is_anomaly[0]
    assert out.contributions is not None
    names = ["a", "b", "c", "d"]
    top = top_contributions(out.contributions[0], names, k=2)
    assert top[0][0] == "d"
    assert top[0][1] > 0.9
    assert top[0][1] >= top[1][1]


def test_a_correlation_break_is_blamed_on_the_pair_with_the_pca_member(
    correlated: NDArray[np.float64],
) -> None:
    model = AnomalyEnsemble(detectors=ALL, n_estimators=30).fit(correlated)
    # Each value is ordinary (1.5 robust sd), but the correlated pair disagrees in sign.
    row = model.center_ + np.array([1.5, -1.5, 0.0, 0.0]) * model.scale_
    out = model.explain(row[None, :])
    assert out.votes[0, ALL.index("pca")]
    assert out.contributions is not None
    assert {name for name, _ in top_contributions(out.contributions[0], "abcd", k=2)} == {"a", "b"}


def test_a_row_at_the_median_gets_equal_shares(model: AnomalyEnsemble) -> None:
    shares = feature_contributions(np.zeros((1, 4)))
    np.testing.assert_array_equal(shares, [[0.25] * 4])
    out = model.explain(model.center_[None, :])
    assert out.contributions is not None
    np.testing.assert_allclose(out.contributions.sum(), 1.0)


def test_overflowing_rows_share_among_the_infinite_terms() -> None:
    with np.errstate(over="ignore"):
        shares = feature_contributions(np.array([[1e200, 1e200, 1.0, 0.0]]))
    np.testing.assert_array_equal(shares, [[0.5, 0.5, 0.0, 0.0]])


def test_combine_without_rows_keeps_the_old_contract(
    model: AnomalyEnsemble, correlated: NDArray[np.float64]
) -> None:
    scores = model.detector_scores(correlated[:10])
    without = model.combine(scores)
    assert without.contributions is None
    with_rows = model.combine(scores, correlated[:10])
    np.testing.assert_array_equal(without.is_anomaly, with_rows.is_anomaly)
    np.testing.assert_array_equal(with_rows.contributions, model.contributions(correlated[:10]))


def test_severity_is_zero_when_normal_and_grows_with_the_score(
    model: AnomalyEnsemble, correlated: NDArray[np.float64]
) -> None:
    ray = model.center_ + np.outer(np.linspace(0.0, 15.0, 60), model.scale_ * [0, 0, 1, -1])
    out = model.explain(ray)
    assert np.all(out.severity[~out.is_anomaly] == 0.0)
    assert np.all(out.severity[out.is_anomaly] > 0.0)
    assert np.all((out.severity >= 0.0) & (out.severity <= 1.0))
    order = np.argsort(out.anomaly_score)
    assert np.all(np.diff(out.severity[order]) >= 0.0)
    assert out.severity[-1] > 0.5


def test_severity_formula() -> None:
    scores = np.array([-3.0, 0.0, 1.0, 9.0, np.inf])
    np.testing.assert_array_equal(severity_from_score(scores), [0.0, 0.0, 0.5, 0.9, 1.0])


def test_top_contributions_sorts_ties_in_feature_order_and_validates() -> None:
    shares = np.array([0.25, 0.5, 0.25])
    assert top_contributions(shares, ["x", "y", "z"]) == [("y", 0.5), ("x", 0.25), ("z", 0.25)]
    assert top_contributions(shares, ["x", "y", "z"], k=1) == [("y", 0.5)]
    with pytest.raises(ValueError, match="expected 2 shares"):
        top_contributions(shares, ["x", "y"])
    with pytest.raises(ValueError, match="k must be"):
        top_contributions(shares, ["x", "y", "z"], k=0)

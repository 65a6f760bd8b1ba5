"""The PCA monitor: T² and SPE against scikit-learn's PCA, the component rule, the limits."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.decomposition import PCA

from anomaly_api.detection import PCAMonitorDetector
from anomaly_api.detection.pca_monitor import parallel_analysis


def low_rank(seed: int, n: int = 2000, rank: int = 3, n_features: int = 8) -> NDArray[np.float64]:
    """``rank`` equally strong latent factors with orthogonal loadings, plus small noise."""
    rng = np.random.default_rng(seed)
    loadings = np.linalg.qr(rng.normal(size=(n_features, rank)))[0].T * np.sqrt(n_features)
    result: NDArray[np.float64] = rng.normal(size=(n, rank)) @ loadings + 0.1 * rng.normal(
        size=(n, n_features)
    )
    return result


def test_t2_and_q_match_scikit_learns_pca() -> None:
    X = low_rank(0)
    detector = PCAMonitorDetector(n_components=3).fit(X)
    pca = PCA(n_components=3, svd_solver="full").fit(X)
    X_new = low_rank(1, n=300) + np.random.default_rng(2).normal(size=(300, 8))
    t2, q, residual = detector.statistics(X_new)
    scores = pca.transform(X_new)
    np.testing.assert_allclose(t2, np.sum(scores**2 / pca.explained_variance_, axis=1), rtol=1e-9)
    np.testing.assert_allclose(residual, X_new - pca.inverse_transform(scores), atol=1e-9)
    np.testing.assert_allclose(q, np.sum(residual**2, axis=1), rtol=1e-12)


def test_parallel_analysis_finds_the_latent_rank() -> None:
    assert parallel_analysis(low_rank(3)) == 3
    assert PCAMonitorDetector().fit(low_rank(4, rank=2)).n_components_ == 2


def test_cumulative_variance_rule_and_explicit_count() -> None:
    X = low_rank(5)
    ratios = np.cumsum(PCA().fit(X).explained_variance_ratio_)
    chosen = PCAMonitorDetector(n_components=0.5).fit(X).n_components_
    assert ratios[chosen - 1] >= 0.5
    assert chosen == 1 or ratios[chosen - 2] < 0.5
    assert PCAMonitorDetector(n_components=5).fit(X).n_components_ == 5


def test_limits_are_training_percentiles_and_offset_is_minus_one() -> None:
    X = low_rank(6)
    detector = PCAMonitorDetector(n_components=3, percentile=95.0).fit(X)
    t2, q, _ = detector.statistics(X)
    assert detector.t2_limit_ == pytest.approx(np.percentile(t2, 95.0))
    assert detector.q_limit_ == pytest.approx(np.percentile(q, 95.0))
    assert detector.offset_ == -1.0
    flagged = detector.predict(X) == -1
    # Either statistic above its 95th percentile: between 5% and 10% of the rows.
    assert 0.05 <= flagged.mean() <= 0.10
    np.testing.assert_array_equal(flagged, (t2 > detector.t2_limit_) | (q > detector.q_limit_))


def test_a_correlation_break_is_caught_by_spe_alone() -> None:
    rng = np.random.default_rng(7)
    latent = rng.normal(size=(3000, 1))
    X = np.hstack([latent, latent]) + 0.05 * rng.normal(size=(3000, 2))
    X = np.hstack([X, rng.normal(size=(3000, 2))])
    detector = PCAMonitorDetector(n_components=3).fit(X)
    broken = np.array([[1.0, -1.0, 0.0, 0.0]])  # each value ordinary, the pair is not
    t2, q, _ = detector.statistics(broken)
    assert t2[0] < detector.t2_limit_
    assert q[0] > 10 * detector.q_limit_
    assert detector.predict(broken).tolist() == [-1]


@pytest.mark.parametrize("n_components", [0, 8, 1.5, "3"])
def test_bad_component_counts_are_refused(n_components: object) -> None:
    with pytest.raises(ValueError, match="n_components"):
        PCAMonitorDetector(n_components=n_components).fit(low_rank(8, n=100))  # type: ignore[arg-type]


def test_one_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="two features"):
        PCAMonitorDetector().fit(np.arange(10.0).reshape(-1, 1))

"""The fast path must give scikit-learn's detector scores (to 1e-9) and the same votes.

Every exactness test runs on both kernels: the compiled C kernel (the ``fast`` backend)
and the vectorised NumPy fallback (the ``numpy`` backend).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.ensemble import IsolationForest

from anomaly_api.artifacts import load_artifact
from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.detection.fast import (
    FastScorer,
    IncompatibleEstimatorError,
    Kernel,
    compile_scorer,
)
from anomaly_api.detection.fast import forest as forest_module
from anomaly_api.detection.fast import lof as lof_module
from anomaly_api.detection.fast.blocks import TrainingBlocks
from anomaly_api.detection.fast.forest import FlatForest
from anomaly_api.detection.fast.kernel import (
    check_forest,
    knn,
    knn_blocks,
    pairwise_sum,
    score_rows,
)

TOLERANCE = 1e-9
"""Absolute for scores up to 1, relative beyond: far rows get LOF scores of ~1e10, where
one unit in the last place is ~2e-6 and an absolute 1e-9 would ask for more than float64."""


def assert_close(actual: NDArray[np.float64], desired: NDArray[np.float64]) -> None:
    """``|actual - desired| <= TOLERANCE * max(1, |desired|)`` everywhere."""
    np.testing.assert_allclose(actual, desired, rtol=TOLERANCE, atol=TOLERANCE)


def assert_same_as_reference(model: AnomalyEnsemble, scorer: FastScorer, X: NDArray[np.float64]):
    """Scores within TOLERANCE, and identical votes and decisions."""
    reference = model.detector_scores(X)
    fast = scorer.detector_scores(X)
    assert fast.shape == reference.shape == (X.shape[0], len(model.detectors_))
    assert_close(fast, reference)
    ours, theirs = model.combine(fast), model.combine(reference)
    np.testing.assert_array_equal(ours.votes, theirs.votes)
    np.testing.assert_array_equal(ours.is_anomaly, theirs.is_anomaly)


def edge_cases(X_train: NDArray[np.float64], forest: FlatForest, seed: int) -> NDArray[np.float64]:
    """Rows that stress each detector: training duplicates, split points, far outliers."""
    rng = np.random.default_rng(seed)
    n_features = X_train.shape[1]
    on_splits = X_train[:200].copy()
    # Put features exactly on split thresholds, and just beside them in float64 only
    # (the forest compares float32(x), so these must go the same way as scikit-learn's).
    internal = np.flatnonzero(forest.left != -1)[:200]
    on_splits[np.arange(200), forest.feature[internal]] = forest.threshold[internal]
    beside = on_splits.copy()
    beside[np.arange(200), forest.feature[internal]] = np.nextafter(
        forest.threshold[internal], np.inf
    )
    far = rng.normal(size=(60, n_features)) * np.logspace(1, 6, 60)[:, None]
    return np.vstack(
        [
            rng.normal(size=(1500, n_features)),
            X_train[:500],  # exact duplicates of training points
            on_splits,
            beside,
            far,
            np.median(X_train, axis=0, keepdims=True),  # z-score of exactly zero
            np.full((1, n_features), 1e6),
        ]
    )


@pytest.fixture(params=["c", "numpy"])
def kernel(request: pytest.FixtureRequest) -> Kernel:
    """Both ways of finishing a batch must be exact."""
    value: Kernel = request.param
    return value


@pytest.fixture(scope="module")
def default_size() -> tuple[AnomalyEnsemble, NDArray[np.float64]]:
    """The default ensemble's size (100 trees, k=20) on 4,000 rows with duplicated points."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(4000, 8))
    X[:30] = X[30]  # 31 copies of one point: more duplicates than k
    X[100:105] = X[105]  # a few copies: ties inside the neighbourhood
    return AnomalyEnsemble(random_state=3).fit(X), X


@pytest.fixture
def fitted(
    kernel: Kernel, default_size: tuple[AnomalyEnsemble, NDArray[np.float64]]
) -> tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer]:
    """The default-size model, its training data and its fast scorer on ``kernel``."""
    model, X_train = default_size
    return model, X_train, compile_scorer(model, kernel)


def test_default_size_model_is_reproduced_exactly(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    model, X_train, scorer = fitted
    X = edge_cases(X_train, scorer.forest_, seed=1)
    assert_same_as_reference(model, scorer, X)
    assert model.combine(scorer.detector_scores(X)).is_anomaly.any()  # outliers are found


@pytest.mark.parametrize("n_rows", [1, 2, 100, 1000])
def test_batch_sizes_match(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer], n_rows: int
) -> None:
    model, _, scorer = fitted
    X = np.random.default_rng(n_rows).normal(scale=2.0, size=(n_rows, 8))
    assert_same_as_reference(model, scorer, X)


def test_single_rows_match_batch(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    model, X_train, scorer = fitted
    X = np.vstack([X_train[:5], X_train[:5] + 10.0])
    one_by_one = np.vstack([scorer.detector_scores(X[i : i + 1]) for i in range(len(X))])
    np.testing.assert_array_equal(one_by_one, scorer.detector_scores(X))
    assert_same_as_reference(model, scorer, X[:1])


def test_duplicate_training_points_hit_the_lrd_epsilon(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    model, X_train, scorer = fitted
    X = X_train[[0, 15, 29, 30, 100, 105]]
    assert_same_as_reference(model, scorer, X)
    # 31 identical points: every reachability distance is 0 and the LOF ratio is 1.
    np.testing.assert_allclose(scorer.detector_scores(X[:1])[0, 1], -1.0)


def test_tiny_artifact_from_disk(kernel: Kernel, tiny_artifacts_dir: Path) -> None:
    model = load_artifact(tiny_artifacts_dir, "tiny-1").model
    scorer = compile_scorer(model, kernel)
    rng = np.random.default_rng(11)
    X = np.vstack([rng.normal(size=(2000, 8)), rng.normal(scale=8.0, size=(200, 8))])
    assert_same_as_reference(model, scorer, X)


def test_wide_data_uses_scikit_learns_own_neighbour_search(
    kernel: Kernel,
) -> None:
    # More than 15 features: LocalOutlierFactor picks brute force, whose distances the
    # fast path takes from the estimator itself to stay identical.
    rng = np.random.default_rng(2)
    X_train = rng.normal(size=(600, 20))
    model = AnomalyEnsemble(n_estimators=20, n_neighbors=10).fit(X_train)
    assert model.local_outlier_factor_._fit_method == "brute"
    scorer = compile_scorer(model, kernel)
    X = np.vstack([X_train[:100], rng.normal(scale=3.0, size=(400, 20))])
    assert_same_as_reference(model, scorer, X)


def test_forest_with_feature_subsampling_maps_columns_back() -> None:
    rng = np.random.default_rng(4)
    X_train = rng.normal(size=(800, 6))
    forest = IsolationForest(n_estimators=30, max_features=0.5, random_state=0).fit(X_train)
    flat = FlatForest.from_isolation_forest(forest)
    X = rng.normal(scale=2.0, size=(500, 6))
    dist = np.zeros((len(X), 1))
    ind = np.zeros((len(X), 1), dtype=np.int64)
    out = np.empty((len(X), 3))
    ones = np.ones(6)
    score_rows(
        X, dist, ind, flat.roots, flat.feature, flat.threshold, flat.left, flat.right,
        flat.leaf_value, flat.denominator, np.ones(1), np.ones(1), ones, ones, out,
    )  # fmt: skip
    np.testing.assert_allclose(out[:, 0], forest.score_samples(X), rtol=0, atol=TOLERANCE)


def test_non_contiguous_and_list_input(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    model, X_train, scorer = fitted
    fortran = np.asfortranarray(X_train[:50] * 1.5)
    expected = model.detector_scores(fortran)
    np.testing.assert_allclose(scorer.detector_scores(fortran), expected, rtol=0, atol=TOLERANCE)
    as_list = fortran.tolist()
    np.testing.assert_allclose(scorer.detector_scores(as_list), expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((1, 7)),
        np.zeros((0, 8)),
        np.zeros(8),
        np.array([[np.nan] * 8]),
        np.array([[np.inf] + [0.0] * 7]),
    ],
)
def test_bad_input_is_refused(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer], bad: NDArray[np.float64]
) -> None:
    scorer = fitted[2]
    with pytest.raises(ValueError, match=r"expected shape|NaN"):
        scorer.detector_scores(bad)


def test_largest_values_the_api_accepts_give_the_same_decisions(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    # Near 1e150 the training points are all at the same rounded distance, so which k of
    # them are "nearest" is a tie that scikit-learn breaks its own way: the LOF scores
    # agree only in magnitude. The forest, the z-score and every decision are the same.
    model, _, scorer = fitted
    X = np.array([[1e150] * 8, [-1e150, 1e150] * 4, [1e150] + [0.0] * 7])
    with np.errstate(over="ignore"):  # scikit-learn's float32 cast saturates to inf
        reference = model.detector_scores(X)
    fast = scorer.detector_scores(X)
    np.testing.assert_allclose(fast[:, [0, 2]], reference[:, [0, 2]], rtol=1e-12)
    np.testing.assert_allclose(fast[:, 1], reference[:, 1], rtol=0.5)
    np.testing.assert_array_equal(model.combine(fast).votes, model.combine(reference).votes)
    assert model.combine(fast).is_anomaly.all()


@pytest.mark.parametrize("value", [1e155, -1e200, 1.7976931348623157e308])
def test_values_whose_distances_overflow_are_refused(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer], value: float
) -> None:
    scorer = fitted[2]
    with pytest.raises(ValueError, match="too large"):
        scorer.detector_scores(np.full((2, 8), value))


def test_scorer_keeps_the_ensembles_decision_rule(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    model, _, scorer = fitted
    X = np.array([[0.0] * 8, [9.0, -9.0] * 4])
    explained = scorer.explain(X)
    np.testing.assert_array_equal(explained.is_anomaly, model.explain(X).is_anomaly)
    np.testing.assert_array_equal(explained.is_anomaly, [False, True])


def test_scaled_rows_are_the_ensembles_and_decide_on_them_is_combine(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    """The rows a scorer hands back with its scores are the ensemble's own scaled rows,
    bit for bit, so deciding on them gives ``combine``'s output on the raw rows."""
    model, X_train, scorer = fitted
    X = np.vstack([X_train[:3], [[0.0] * 8, [9.0, -9.0] * 4]])
    for source in (scorer, model):
        scaled, scores = source.scaled_scores(X)
        np.testing.assert_array_equal(scaled, model.scale(X))
        np.testing.assert_array_equal(scores, source.detector_scores(X))
        decided, combined = model.decide(scores, scaled), model.combine(scores, X)
        for name in ("anomaly_score", "confidence", "severity", "votes", "contributions"):
            np.testing.assert_array_equal(getattr(decided, name), getattr(combined, name))
    with pytest.raises(ValueError, match="shape"):
        model.decide(scores, scaled[:, :4])


@pytest.mark.parametrize("n", [0, 1, 7, 8, 20, 127, 128, 129, 300, 1000])
def test_pairwise_sum_adds_in_numpys_order(n: int) -> None:
    values = np.random.default_rng(n).lognormal(sigma=8.0, size=n)
    assert pairwise_sum(values, 0, n) == np.add.reduce(values)  # bit for bit


ALL_MEMBERS = ("isolation_forest", "local_outlier_factor", "zscore", "pca")


@pytest.fixture(scope="module")
def with_pca() -> tuple[AnomalyEnsemble, NDArray[np.float64]]:
    """All four members on correlated data in mixed units (so the scaling matters)."""
    rng = np.random.default_rng(9)
    latent = rng.normal(size=(3000, 3))
    X = latent @ rng.normal(size=(3, 8)) + 0.3 * rng.normal(size=(3000, 8))
    X = X * np.logspace(-1, 3, 8) + 50.0
    X[:25] = X[25]  # duplicates beyond k
    return AnomalyEnsemble(detectors=ALL_MEMBERS, random_state=1).fit(X), X


def pca_edge_cases(model: AnomalyEnsemble, X_train: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows on the PCA mean, on the model plane, far off it, at the training extremes."""
    rng = np.random.default_rng(5)
    pca = model.pca_
    unscale = model.scale_
    mean_row = pca.mean_ * unscale + model.center_  # T² = 0 and Q = 0
    on_plane = (rng.normal(scale=4.0, size=(50, pca.n_components_)) @ pca.components_) * unscale
    off_plane = rng.normal(scale=5.0, size=(50, X_train.shape[1])) * unscale
    return np.vstack(
        [
            mean_row[None, :],
            on_plane + mean_row,  # Q ~ 0, large T²
            off_plane + mean_row,
            X_train[:300],
            X_train.min(axis=0, keepdims=True),
            X_train.max(axis=0, keepdims=True),
            np.full((1, X_train.shape[1]), 1e6),
        ]
    )


def test_pca_member_and_scaling_are_exact_on_the_fast_path(
    kernel: Kernel, with_pca: tuple[AnomalyEnsemble, NDArray[np.float64]]
) -> None:
    model, X_train = with_pca
    scorer = compile_scorer(model, kernel)
    X = np.vstack([pca_edge_cases(model, X_train), edge_cases(X_train, scorer.forest_, seed=2)])
    assert_same_as_reference(model, scorer, X)
    pca_column = scorer.detector_scores(X)[:, ALL_MEMBERS.index("pca")]
    # The PCA member is NumPy on both kernels and shares the reference's code: bit for bit.
    np.testing.assert_array_equal(pca_column, model.pca_.score_samples(model.scale(X)))
    assert pca_column[0] == pytest.approx(0.0, abs=1e-9)  # the PCA mean: T² = Q = 0
    out = scorer.explain(X)
    assert out.contributions is not None
    np.testing.assert_array_equal(out.contributions, model.explain(X).contributions)


@pytest.mark.parametrize(
    "members",
    [("pca",), ("zscore", "pca"), ("pca", "isolation_forest"), ("local_outlier_factor",)],
)
def test_any_subset_of_members_is_exact(
    kernel: Kernel, members: tuple[str, ...], with_pca: tuple[AnomalyEnsemble, NDArray[np.float64]]
) -> None:
    _, X_train = with_pca
    model = AnomalyEnsemble(detectors=members, min_votes=1, n_estimators=30).fit(X_train[:1500])
    scorer = compile_scorer(model, kernel)
    X = np.vstack([X_train[1500:2500], X_train[1500:1600] * 3.0])
    assert_same_as_reference(model, scorer, X)
    assert scorer.detector_scores(X).shape == (len(X), len(members))


def test_a_channel_constant_in_training_is_exact_with_its_floored_scale(
    kernel: Kernel, with_pca: tuple[AnomalyEnsemble, NDArray[np.float64]]
) -> None:
    _, X_train = with_pca
    X_fit = X_train[:1500].copy()
    X_fit[:, 3] = 42.0
    model = AnomalyEnsemble(detectors=ALL_MEMBERS, random_state=2).fit(X_fit)
    assert model.scale_rule_[3] == "floor"
    scorer = compile_scorer(model, kernel)
    later = X_train[1500:1800].copy()
    later[:, 3] = 42.0
    moved = later[:100].copy()
    moved[:, 3] = 42.0 + np.geomspace(1e-6, 1.0, 100)  # from below the floor to 2e4 spreads
    X = np.vstack([later, moved, X_fit[:50]])
    assert_same_as_reference(model, scorer, X)
    out = scorer.explain(X)
    assert out.contributions is not None
    np.testing.assert_array_equal(out.contributions, model.explain(X).contributions)
    assert out.is_anomaly[340:400].all()  # every move above ~1e-4 of the value is flagged
    # Moved by 10% of the value or more (1e5 spreads), the other channels add too little to
    # the distance to tell the training points apart: as near 1e150 above, the KD-tree of
    # the numpy backend breaks the ties its own way. The C kernel stays exact.
    far = later[:50].copy()
    far[:, 3] = 42.0 + np.geomspace(4.2, 4.2e3, 50)
    reference, fast = model.detector_scores(far), scorer.detector_scores(far)
    assert_close(fast[:, [0, 2, 3]], reference[:, [0, 2, 3]])
    if kernel == "c":
        assert_close(fast, reference)
    np.testing.assert_allclose(fast[:, 1], reference[:, 1], rtol=0.5)
    np.testing.assert_array_equal(model.combine(fast).votes, model.combine(reference).votes)
    assert model.combine(fast).is_anomaly.all()


# --- the compiled kernel itself ---------------------------------------------------------


def test_the_compiled_kernel_is_an_extension_module() -> None:
    module = importlib.import_module("anomaly_api.detection.fast._kernel")
    assert module.__file__ is not None
    assert module.__file__.endswith((".so", ".pyd"))  # built ahead of time, not a JIT
    assert module.LEAF == forest_module.LEAF
    assert module.LRD_EPSILON == lof_module.LRD_EPSILON


def test_a_missing_kernel_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if the extension had never been built.
    package = importlib.import_module("anomaly_api.detection.fast")
    monkeypatch.setitem(sys.modules, "anomaly_api.detection.fast._kernel", None)
    monkeypatch.delattr(package, "_kernel")
    monkeypatch.delitem(sys.modules, "anomaly_api.detection.fast.kernel")
    monkeypatch.delattr(package, "kernel")
    with pytest.raises(ImportError, match=r"not built.*make install.*BACKEND=numpy"):
        importlib.import_module("anomaly_api.detection.fast.kernel")


def test_neighbour_scan_gives_scikit_learns_distances_bit_for_bit(
    default_size: tuple[AnomalyEnsemble, NDArray[np.float64]],
) -> None:
    model, X_train = default_size
    lof = model.local_outlier_factor_
    assert lof._fit_method == "kd_tree"
    rng = np.random.default_rng(5)
    # The LOF sees the model's scaled rows: compare in that space.
    X = model.scale(np.vstack([rng.normal(scale=1.5, size=(300, 8)), X_train[200:260]]))
    train_rows = lof_module.read_fitted_lof(lof).train_rows
    dist = np.empty((len(X), 20))
    ind = np.empty((len(X), 20), dtype=np.int64)
    ties = np.empty(len(X), dtype=np.int64)
    knn(X, np.ascontiguousarray(train_rows.T), 20, dist, ind, ties, 1)
    expected_dist, expected_ind = lof.kneighbors(X, n_neighbors=20)
    np.testing.assert_array_equal(dist, expected_dist)
    np.testing.assert_array_equal(ind, expected_ind)


def test_neighbour_scan_is_the_same_on_two_threads_and_breaks_ties_by_index() -> None:
    rng = np.random.default_rng(6)
    train = rng.normal(size=(500, 3))
    train[10:20] = train[5]  # 11 copies of one point: ties at distance 0
    X = np.vstack([train[5:6], rng.normal(size=(199, 3))])
    results = []
    for threads in (1, 2):
        dist = np.empty((len(X), 4))
        ind = np.empty((len(X), 4), dtype=np.int64)
        ties = np.empty(len(X), dtype=np.int64)
        knn(X, np.ascontiguousarray(train.T), 4, dist, ind, ties, threads)
        results.append((dist, ind, ties))
    for ours, other in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(ours, other)
    dist, ind, ties = results[0]
    np.testing.assert_array_equal(ind[0], [5, 10, 11, 12])  # equal distances: lowest index
    np.testing.assert_array_equal(dist[0], 0.0)
    # 11 points at distance 0 for k=4: the neighbour set is a tie, flagged for the caller;
    # so is every row whose 4th and 5th nearest are equally far (the copies straddle k).
    squared = np.sort(((X[:, None, :] - train[None, :, :]) ** 2).sum(axis=2), axis=1)
    expected = squared[:, 3] == squared[:, 4]
    assert expected[0]
    assert 0 < expected.sum() < len(X)
    np.testing.assert_array_equal(ties, expected)


def blocked_knn(
    X: NDArray[np.float64], blocks: TrainingBlocks, k: int, threads: int = 1
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """``knn_blocks`` on ``X``: distances, indices and tie flags."""
    dist = np.empty((len(X), k))
    ind = np.empty((len(X), k), dtype=np.int64)
    ties = np.empty(len(X), dtype=np.int64)
    knn_blocks(X, *blocks.kernel_arrays(), k, dist, ind, ties, threads)
    return dist, ind, ties


def plain_knn(
    X: NDArray[np.float64], train: NDArray[np.float64], k: int
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """The plain scan ``knn`` on ``X``: distances, indices and tie flags."""
    dist = np.empty((len(X), k))
    ind = np.empty((len(X), k), dtype=np.int64)
    ties = np.empty(len(X), dtype=np.int64)
    knn(X, np.ascontiguousarray(train.T), k, dist, ind, ties, 1)
    return dist, ind, ties


@pytest.mark.parametrize(
    ("block_rows", "group_rows"),
    [(1, 1), (3, 30), (7, 64), (8, 64), (32, 32), (32, 256), (256, 256)],
)
def test_blocked_scan_is_the_plain_scan_bit_for_bit_and_scikit_learns(
    default_size: tuple[AnomalyEnsemble, NDArray[np.float64]], block_rows: int, group_rows: int
) -> None:
    # Skipping blocks by their boxes must change nothing: same distances (bit for bit),
    # same indices in the same order, same tie flags as the plain scan, on rows near,
    # far, on duplicates and at the largest accepted magnitudes (ties included); and
    # scikit-learn's distances and neighbour sets wherever no tie is flagged.
    model, _ = default_size
    lof = model.local_outlier_factor_
    train_rows = lof_module.read_fitted_lof(lof).train_rows
    blocks = TrainingBlocks.from_rows(train_rows, block_rows, group_rows)
    rng = np.random.default_rng(11)
    X = np.vstack(
        [
            model.scale(rng.normal(scale=1.5, size=(300, 8))),
            train_rows[rng.choice(len(train_rows), 100)],  # exact duplicates: distance 0
            train_rows[:50] + np.nextafter(0, 1),  # one subnormal away
            rng.normal(size=(40, 8)) * np.logspace(1, 150, 40)[:, None],
            np.full((1, 8), 1e154),  # squared distances overflow: fewer than k found
        ]
    )
    expected = plain_knn(X, train_rows, 20)
    for threads in (1, 2):
        for ours, theirs in zip(blocked_knn(X, blocks, 20, threads), expected, strict=True):
            np.testing.assert_array_equal(ours, theirs)
    dist, ind, ties = expected
    clean = (ties == 0) & np.isfinite(dist[:, -1])
    expected_dist, expected_ind = lof.kneighbors(X[clean], n_neighbors=20)
    np.testing.assert_array_equal(dist[clean], expected_dist)
    # The same neighbours; among equal distances inside the k (duplicated training rows)
    # ours come by index, the KD-tree's in its traversal order.
    np.testing.assert_array_equal(np.sort(ind[clean]), np.sort(expected_ind))


@pytest.mark.parametrize("block_rows", [1, 4, 5, 64])
def test_blocked_scan_breaks_ties_by_index_and_flags_them_as_the_plain_scan(
    block_rows: int,
) -> None:
    rng = np.random.default_rng(6)
    train = rng.normal(size=(500, 3))
    train[10:20] = train[5]  # 11 copies of one point: ties at distance 0
    train[100:104] = train[400]  # 5 copies: they straddle k = 4 for some rows
    X = np.vstack([train[5:6], train[400:401], rng.normal(size=(198, 3))])
    blocks = TrainingBlocks.from_rows(train, block_rows)
    for k in (1, 4, 5, 500):
        expected = plain_knn(X, train, k)
        for threads in (1, 2):
            for ours, theirs in zip(blocked_knn(X, blocks, k, threads), expected, strict=True):
                np.testing.assert_array_equal(ours, theirs)
    _, ind, ties = blocked_knn(X, blocks, 4)
    np.testing.assert_array_equal(ind[0], [5, 10, 11, 12])  # equal distances: lowest index
    np.testing.assert_array_equal(ind[1], [100, 101, 102, 103])
    assert ties[0]
    assert ties[1]


@pytest.mark.parametrize(
    ("layout", "block_rows"),
    [("one block", 256), ("all boxes equal", 4), ("two far clusters", 8), ("far rows", 32)],
)
def test_blocked_scan_is_the_plain_scan_whatever_the_boxes(layout: str, block_rows: int) -> None:
    # The visiting order follows the bounds: a single block, boxes all at the same bound
    # (every training row the same point), boxes at only two bounds, and rows so far
    # that bounds and distances round alike or overflow must all give the plain scan.
    rng = np.random.default_rng(8)
    train = rng.normal(size=(200, 4))
    X = rng.normal(scale=2.0, size=(60, 4))
    if layout == "all boxes equal":
        train[:] = train[0]
    elif layout == "two far clusters":
        train = np.repeat(np.array([[0.0] * 4, [1e6] * 4]), 100, axis=0)
        X = np.vstack([X, [[5e5] * 4], [[1e6] * 4]])
    elif layout == "far rows":
        X = X * np.logspace(0, 153, len(X))[:, None]
    blocks = TrainingBlocks.from_rows(train, block_rows)
    assert (len(blocks.starts) == 2) == (layout == "one block")
    for k in (1, 20, 33, 200):
        expected = plain_knn(X, train, k)
        for threads in (1, 2):
            for ours, theirs in zip(blocked_knn(X, blocks, k, threads), expected, strict=True):
                np.testing.assert_array_equal(ours, theirs)


def _screen_case(case: str, rng: np.random.Generator) -> tuple[NDArray[np.float64], ...]:
    """Training rows and query rows on which a float32 screen without a proven margin would
    drop a neighbour (``test_float32_screen_never_drops_a_neighbour``)."""
    centre = rng.normal(size=8)
    background = centre + rng.normal(size=(300, 8))
    if case == "equal distances":
        # Rows at one exact distance from the centre (the same offsets in other orders):
        # their float64 distances differ by an ulp or two, their float32 ones otherwise.
        offsets = rng.normal(scale=0.3, size=8)
        ring = centre + np.array([offsets[rng.permutation(8)] for _ in range(300)])
        return np.vstack([background, ring]), np.vstack([centre, centre + 1e-12])
    if case == "float32 midpoints":
        # Values halfway between two float32 values: they round to even, a query at either
        # neighbour float32 sees distances float32 cannot tell apart.
        base = rng.normal(size=(300, 8)).astype(np.float32)
        up = np.nextafter(base, np.float32(np.inf))
        midpoints = (base.astype(np.float64) + up.astype(np.float64)) / 2
        queries = np.vstack([base[:20], up[20:40], midpoints[40:60]]).astype(np.float64)
        return np.vstack([midpoints, base.astype(np.float64)[:50]]), queries
    if case == "below float32 resolution":
        # A cluster ~1e-9 wide around a point halfway between two float32 values near 1e3:
        # every value rounds to one or the other, so a float32 difference is 0 or an ulp
        # (6e-5) whatever the float64 distance (~1e-9), which decides the order alone.
        midpoint = (1e3 + float(np.nextafter(np.float32(1e3), np.float32(2e3)))) / 2
        cluster = midpoint + rng.normal(scale=1e-9, size=(300, 8))
        queries = midpoint + rng.normal(scale=1e-9, size=(20, 8))
        return np.vstack([cluster, midpoint + rng.normal(size=(50, 8))]), queries
    if case == "features of different scales":
        scales = np.logspace(-6, 6, 8)
        train = rng.normal(size=(400, 8)) * scales
        return train, np.vstack([train[:10], rng.normal(size=(20, 8)) * scales])
    if case == "query equal to training rows":
        return background, background[rng.choice(300, 30)]
    magnitude = {"huge, screened": 1e16, "huge, beyond the screen": 1e19,
                 "float32 subnormal": 1e-40, "below float32": 1e-47,
                 "float64 subnormal": 1e-310}[case]  # fmt: skip
    train = rng.normal(size=(300, 8)) * magnitude
    return train, np.vstack([train[:10], rng.normal(size=(20, 8)) * magnitude, np.zeros((1, 8))])


@pytest.mark.parametrize(
    "case",
    ["equal distances", "float32 midpoints", "below float32 resolution",
     "features of different scales", "query equal to training rows", "huge, screened",
     "huge, beyond the screen", "float32 subnormal", "below float32", "float64 subnormal"],
)  # fmt: skip
def test_float32_screen_never_drops_a_neighbour(case: str) -> None:
    # The screen leaves out a row only where its float32 distance proves the float64 one
    # beyond the k-th (docs/kernel.md): on rows whose distances float32 cannot tell apart,
    # or nearly equal, or at the magnitudes where float32 underflows or the screen turns
    # itself off, the answer must be the plain scan's, bit for bit, ties included.
    rng = np.random.default_rng(17)
    train, X = _screen_case(case, rng)
    X = np.ascontiguousarray(X)
    for block_rows in (8, 32, 37):
        blocks = TrainingBlocks.from_rows(train, block_rows, 128)
        for k in (1, 7, 20, 64):
            expected = plain_knn(X, train, k)
            for threads in (1, 2):
                for ours, theirs in zip(blocked_knn(X, blocks, k, threads), expected, strict=True):
                    np.testing.assert_array_equal(ours, theirs)


def test_blocks_are_checked_once_and_the_offsets_on_every_call() -> None:
    rows = np.random.default_rng(3).normal(size=(100, 3))
    blocks = TrainingBlocks.from_rows(rows, 8, 24)
    assert np.diff(blocks.starts).max() <= 8
    assert np.diff(blocks.starts[blocks.groups]).max() <= 24
    assert not blocks.lo.flags.writeable  # the kernel trusts the boxes: frozen
    assert not blocks.group_lo.flags.writeable
    for name in ("lo", "group_lo"):
        shrunk = getattr(blocks, name).copy()
        shrunk[0, 0] += 1e-9  # a box that misses one of its rows
        with pytest.raises(ValueError, match="outside its block's or its group's box"):
            dataclasses.replace(blocks, **{name: shrunk}).check(rows)
    assert not blocks.screen.flags.writeable
    moved = blocks.screen.copy()
    moved[5] = np.nextafter(moved[5], np.float32(np.inf))  # not the row rounded to float32
    with pytest.raises(ValueError, match="the screen is not the rows rounded to float32"):
        dataclasses.replace(blocks, screen=moved).check(rows)
    with pytest.raises(ValueError, match="block_rows"):
        TrainingBlocks.from_rows(rows, 257)
    X = rows[:2].copy()
    dist, ind, ties = np.empty((2, 4)), np.empty((2, 4), dtype=np.int64), np.empty(2, np.int64)

    def call(**changed: NDArray[np.float64] | NDArray[np.int64]) -> None:
        knn_blocks(X, *dataclasses.replace(blocks, **changed).kernel_arrays(), 4, dist, ind,
                   ties, 1)  # fmt: skip

    past_the_end = blocks.starts.copy()
    past_the_end[-1] += 1  # past the last training row
    empty_group = blocks.groups.copy()
    empty_group[1] = 0  # group 0 without a block
    short = blocks.groups.copy()
    short[-1] -= 1  # the last block in no group
    for bad in ({"starts": past_the_end}, {"groups": empty_group}, {"groups": short}):
        with pytest.raises(ValueError, match="malformed block or group offsets"):
            call(**bad)
    with pytest.raises(ValueError, match="inconsistent"):
        call(lo=blocks.lo[1:])
    with pytest.raises(ValueError, match="inconsistent"):
        call(group_hi=blocks.group_hi[1:])
    with pytest.raises(TypeError, match="int64"):
        call(index=blocks.index.astype(np.int32))
    with pytest.raises(TypeError, match="float32"):
        call(screen=blocks.screen.astype(np.float64))
    with pytest.raises(ValueError, match="inconsistent"):
        call(screen=blocks.screen[1:])
    call()  # the unchanged arrays are accepted


def test_kernel_refuses_wrong_arrays_instead_of_reading_out_of_bounds() -> None:
    X = np.zeros((2, 3))
    train_t = np.zeros((3, 10))
    dist = np.empty((2, 4))
    ties = np.empty(2, dtype=np.int64)
    with pytest.raises(TypeError, match="int64"):
        knn(X, train_t, 4, dist, np.empty((2, 4), dtype=np.int32), ties, 1)
    with pytest.raises(TypeError, match="C-contiguous"):
        knn(np.zeros((3, 2)).T, train_t, 4, dist, np.empty((2, 4), dtype=np.int64), ties, 1)
    with pytest.raises(ValueError, match="inconsistent"):
        knn(X, train_t, 11, np.empty((2, 11)), np.empty((2, 11), dtype=np.int64), ties, 1)
    ones = np.ones(3)
    bad_ind = np.full((2, 1), 10, dtype=np.int64)  # only 10 training rows: 0..9
    roots = np.zeros(1, dtype=np.int64)
    leaf = np.full(1, -1, dtype=np.int64)
    with pytest.raises(ValueError, match="out of range"):
        score_rows(
            X, np.zeros((2, 1)), bad_ind, roots, roots, np.zeros(1), leaf, leaf, np.zeros(1),
            1.0, np.ones(10), np.ones(10), ones, ones, np.empty((2, 3)),
        )  # fmt: skip


# --- the private scikit-learn attributes: read in one place, checked loudly ---------------


def test_private_lof_attributes_still_mean_what_the_scorer_assumes(
    default_size: tuple[AnomalyEnsemble, NDArray[np.float64]],
) -> None:
    # The canary for a scikit-learn upgrade: the private attributes read by
    # read_fitted_lof, recombined by the documented formula, give the estimator's own
    # public scores (training scores from negative_outlier_factor_, novelty scores from
    # score_samples).
    model, X_train = default_size
    lof = model.local_outlier_factor_
    fitted = lof_module.read_fitted_lof(lof)
    np.testing.assert_array_equal(fitted.train_rows, model.scale(X_train))  # LOF sees scaled rows
    k = lof.n_neighbors_
    _, train_ind = lof.kneighbors()  # public: each training point's neighbours, itself excluded
    train_scores = -np.mean(fitted.lrd[train_ind], axis=1) / fitted.lrd
    np.testing.assert_allclose(train_scores, lof.negative_outlier_factor_, rtol=1e-12)
    X = np.random.default_rng(8).normal(scale=2.0, size=(200, 8))
    dist, ind = lof.kneighbors(X, n_neighbors=k)
    reach = np.maximum(dist, fitted.k_distance[ind])
    x_lrd = 1.0 / (reach.mean(axis=1) + lof_module.LRD_EPSILON)
    ours = -np.mean(fitted.lrd[ind] / x_lrd[:, None], axis=1)
    np.testing.assert_allclose(ours, lof.score_samples(X), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", lof_module.PRIVATE_ATTRIBUTES)
def test_a_renamed_private_attribute_fails_loudly(
    default_size: tuple[AnomalyEnsemble, NDArray[np.float64]], name: str
) -> None:
    model = copy.deepcopy(default_size[0])
    delattr(model.local_outlier_factor_, name)
    with pytest.raises(IncompatibleEstimatorError, match=rf"no '{name}'.*BACKEND=sklearn"):
        compile_scorer(model)


def test_a_reshaped_private_attribute_fails_loudly(
    default_size: tuple[AnomalyEnsemble, NDArray[np.float64]],
) -> None:
    model = copy.deepcopy(default_size[0])
    lof = model.local_outlier_factor_
    lof._distances_fit_X_ = lof._distances_fit_X_[:, :-1]
    with pytest.raises(IncompatibleEstimatorError, match=r"_distances_fit_X_ is \(4000, 19\)"):
        compile_scorer(model)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("_lrd", lambda lrd: 1.0 / lrd),  # e.g. a release storing the reachability instead
        ("_distances_fit_X_", np.square),  # squared distances instead of distances
    ],
)
def test_a_private_attribute_that_changed_meaning_fails_at_load_time(
    kernel: Kernel, default_size: tuple[AnomalyEnsemble, NDArray[np.float64]], name, change
) -> None:
    model = copy.deepcopy(default_size[0])
    lof = model.local_outlier_factor_
    original = getattr(lof, name)
    reference = copy.deepcopy(lof)
    setattr(lof, name, change(original))
    # The estimator itself keeps its own (unchanged) behaviour: swap its method back in.
    lof.score_samples = reference.score_samples
    with pytest.raises(IncompatibleEstimatorError, match="local_outlier_factor by"):
        compile_scorer(model, kernel)


def test_forest_check_refuses_nodes_the_kernel_could_not_follow(
    default_size: tuple[AnomalyEnsemble, NDArray[np.float64]],
) -> None:
    scorer = compile_scorer(default_size[0])
    forest = scorer.forest_
    assert not forest.left.flags.writeable  # checked once, then frozen
    check_forest(forest.feature, forest.left, forest.right, 8)  # the real one passes
    internal = int(np.flatnonzero(forest.left != forest_module.LEAF)[3])
    cycle = forest.left.copy()
    cycle[internal] = internal  # a node that is its own child: a walk would never end
    with pytest.raises(ValueError, match="malformed"):
        check_forest(forest.feature, cycle, forest.right, 8)
    wrong_column = forest.feature.copy()
    wrong_column[internal] = 8
    with pytest.raises(ValueError, match="malformed"):
        check_forest(wrong_column, forest.left, forest.right, 8)

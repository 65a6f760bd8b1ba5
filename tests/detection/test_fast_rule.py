"""The compiled decision rule (``FastScorer.explain`` on the ``c`` kernel, one
``explain_rows`` call) is ``AnomalyEnsemble.decide`` on ``scaled_scores``, bit for bit:
every array (-0.0 told from 0.0), every error, and the rows it leaves to the reference
path (a value not finite, a tie at the k-th neighbour, overflowing distances, a margin of
-0.0) come out as the reference path makes them."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from anomaly_api.detection import AnomalyEnsemble
from anomaly_api.detection.ensemble import EnsembleOutput
from anomaly_api.detection.fast import FastScorer, compile_scorer
from anomaly_api.detection.fast.kernel import explain_rows, knn_blocks, pairwise_sum

FIELDS = ("scores", "votes", "anomaly_score", "confidence", "is_anomaly", "severity",
          "contributions")  # fmt: skip

Outcome = tuple[str, object]


@pytest.fixture(scope="module")
def fitted() -> tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer]:
    """The default ensemble's size on 4,000 rows with duplicated points (ties at the k-th
    neighbour for rows on them), and its compiled scorer."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(4000, 8))
    X[:30] = X[30]
    X[100:105] = X[105]
    model = AnomalyEnsemble(random_state=3).fit(X)
    scorer = compile_scorer(model, "c")
    assert scorer._compiled_model is not None
    return model, X, scorer


def reference(scorer: FastScorer, X: object) -> EnsembleOutput:
    """The reference path: ``decide`` on the scorer's scaled rows and scores."""
    scaled, scores = scorer.scaled_scores(X)  # type: ignore[arg-type]
    return scorer.model.decide(scores, scaled)


def outcome(call: Callable[[], EnsembleOutput]) -> Outcome:
    """The output's arrays as text (``repr`` of the lists: -0.0, NaN and dtypes shown), or
    the error's type and message; NumPy's warnings silenced as ``Predictor.score`` does."""
    try:
        with np.errstate(all="ignore"):
            out = call()
    except (ValueError, ArithmeticError) as exc:
        return ("error", f"{type(exc).__name__}: {exc}")
    return ("ok", {name: _text(getattr(out, name)) for name in FIELDS})


def _text(array: NDArray[np.generic] | None) -> str:
    if array is None:
        return "None"
    return f"{array.dtype} {array.shape} {array.tolist()!r}"


def assert_compiled_is_reference(
    scorer: FastScorer, X: NDArray[np.float64], *, compiled: bool | None = None
) -> None:
    """``explain`` and the reference path agree; ``compiled``: whether the kernel must
    have answered (True), declined (False) or either (None)."""
    got = outcome(lambda: scorer.explain(X))
    assert got == outcome(lambda: reference(scorer, X))
    if compiled is not None and got[0] == "ok":
        with np.errstate(all="ignore"):
            assert scorer.explain(X).finite is compiled
    assert got[0] == "ok" or not compiled


def rows_like_and_unlike_training(scorer: FastScorer, n: int) -> NDArray[np.float64]:
    """Normal rows, far rows and rows near (not on) training points, none of them with a
    tie at its k-th neighbour (the 31 copies of one training point make ties for rows
    whose neighbours are all among them, and far rows for distances rounded alike)."""
    assert scorer.lof_ is not None
    train = scorer.lof_.train_rows * scorer.scale_ + scorer.center_
    rng = np.random.default_rng(n)
    near = train[200:260] + rng.normal(scale=1e-3, size=(60, train.shape[1]))
    far = rng.normal(size=(40, train.shape[1])) * np.logspace(1, 12, 40)[:, None]
    rows = rng.permutation(
        np.vstack([rng.normal(scale=2.0, size=(500, train.shape[1])), near, far])
    )
    k = scorer.lof_.n_neighbors
    dist, ind = np.empty((len(rows), k)), np.empty((len(rows), k), dtype=np.int64)
    ties = np.empty(len(rows), dtype=np.int64)
    scaled = scorer.scaled_scores(rows)[0]
    knn_blocks(scaled, *scorer._blocks.kernel_arrays(), k, dist, ind, ties, 1)
    return np.ascontiguousarray(rows[ties == 0][:n])


@pytest.mark.parametrize("n_rows", [1, 2, 63, 64, 500])
def test_batches_are_decided_in_the_kernel_exactly(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer], n_rows: int
) -> None:
    """One thread below 64 rows, two from 64 on: the same bits as the reference."""
    scorer = fitted[2]
    X = rows_like_and_unlike_training(scorer, n_rows)
    assert_compiled_is_reference(scorer, X, compiled=True)


def test_each_row_alone_is_the_row_in_its_batch(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    scorer = fitted[2]
    X = rows_like_and_unlike_training(scorer, 120)
    batch = scorer.explain(X)
    for i in range(X.shape[0]):
        alone = scorer.explain(np.ascontiguousarray(X[i : i + 1]))
        for name in FIELDS:
            assert _text(getattr(alone, name)) == _text(getattr(batch, name)[i : i + 1]), (i, name)


def test_a_row_at_the_median_gets_equal_shares_in_the_kernel(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    model, _, scorer = fitted
    X = np.vstack([model.center_, model.center_ + 1.0])
    assert_compiled_is_reference(scorer, X, compiled=True)
    assert scorer.explain(X).contributions[0].tolist() == [0.125] * 8  # type: ignore[index]


@pytest.mark.parametrize(
    ("rows", "compiled"),
    [
        ("training duplicates", False),  # a tie at the k-th neighbour: scikit-learn's order
        ("1e150", False),  # every training row at one rounded distance: ties
        ("1e155", False),  # distances overflow: refused
        ("1e308", False),  # scaling overflows: refused
        ("nan", False),
        ("inf", False),
        ("1e100", False),  # so far, too, every training row at one rounded distance
        ("50", True),
        ("zeros", True),
    ],
)
def test_rows_the_kernel_leaves_to_the_reference_path(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer], rows: str, compiled: bool
) -> None:
    _, X_train, scorer = fitted
    normal = rows_like_and_unlike_training(scorer, 3)
    odd = {
        "training duplicates": X_train[[0, 29, 103]],
        "nan": np.where(np.eye(3, 8) == 1, np.nan, 0.5),
        "inf": np.where(np.eye(3, 8) == 1, -np.inf, 0.5),
        "zeros": np.zeros((3, 8)),
    }.get(rows)
    if odd is None:
        odd = np.full((3, 8), float(rows)) * np.array([1.0, -1.0, 1.0])[:, None]
    assert_compiled_is_reference(scorer, np.vstack([normal, odd]), compiled=compiled)


def test_inputs_the_kernel_does_not_take_are_the_reference_paths(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    """Lists, other dtypes, strided views, wrong widths and empty batches: converted or
    refused as the reference path does."""
    scorer = fitted[2]
    X = rows_like_and_unlike_training(scorer, 6)
    for odd in (
        X.tolist(),
        X.astype(np.float32),
        np.asfortranarray(X),
        X[::2],
        X[:, :7],
        X[:0],
        X[0],
    ):
        assert outcome(lambda odd=odd: scorer.explain(odd)) == outcome(
            lambda odd=odd: reference(scorer, odd)
        )


@pytest.mark.parametrize("min_votes", [1, 2, 3])
def test_every_k_of_the_vote(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer], min_votes: int
) -> None:
    model = fitted[0]
    voting = copy.deepcopy(model)
    voting.min_votes = min_votes
    scorer = compile_scorer(voting, "c")
    X = rows_like_and_unlike_training(scorer, 300)
    assert_compiled_is_reference(scorer, X, compiled=True)


def test_margins_of_zero(fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer]) -> None:
    """A score exactly at its threshold gives a margin of 0.0: no vote, decided in the
    kernel. A margin of -0.0 (a difference below the smallest double once scaled) is left
    to NumPy, whose partition and maximum choose between two zeros their own way."""
    model, _, scorer = fitted
    X = rows_like_and_unlike_training(scorer, 5)
    scores = scorer.detector_scores(X)
    at_threshold = copy.deepcopy(model)
    at_threshold.set_offsets(scores[0])
    exact = compile_scorer(at_threshold, "c")
    assert_compiled_is_reference(exact, X, compiled=True)
    assert exact.explain(X[:1]).anomaly_score.tolist() == [0.0]
    assert not exact.explain(X[:1]).votes.any()
    below = copy.deepcopy(model)
    below.set_offsets(np.nextafter(scores[0], -np.inf))
    below.scales_ = np.full(3, 1.7e308)
    negative_zero = compile_scorer(below, "c")
    assert_compiled_is_reference(negative_zero, X, compiled=False)
    assert np.signbit(negative_zero.explain(X[:1]).anomaly_score).all()


@pytest.mark.parametrize("n_features", [1, 2, 7, 8, 9, 15])
def test_feature_sums_in_numpys_order(n_features: int) -> None:
    """Shares divide by the row's sum of squares, added in ``np.add.reduce``'s order
    (pairwise, eight accumulators from eight features on), whatever the width the kernel's
    own neighbour search takes (scikit-learn's brute force beyond 15 features)."""
    rng = np.random.default_rng(n_features)
    X = rng.normal(size=(600, n_features)) * rng.lognormal(sigma=3.0, size=n_features)
    model = AnomalyEnsemble(n_estimators=20, random_state=0).fit(X)
    scorer = compile_scorer(model, "c")
    rows = rng.normal(size=(200, n_features)) * rng.lognormal(sigma=6.0, size=(200, n_features))
    assert_compiled_is_reference(scorer, np.ascontiguousarray(rows), compiled=True)


def test_models_the_kernel_does_not_decide_for_keep_the_reference_path() -> None:
    """Other members (the PCA monitor, a subset, another order) and wide data."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 8))
    for detectors in (("isolation_forest", "local_outlier_factor", "zscore", "pca"),
                      ("zscore", "isolation_forest"),
                      ("zscore", "local_outlier_factor", "isolation_forest")):  # fmt: skip
        model = AnomalyEnsemble(detectors=detectors, min_votes=1, n_estimators=20).fit(X)
        scorer = compile_scorer(model, "c")
        assert scorer._compiled_model is None
        assert_compiled_is_reference(scorer, rng.normal(size=(20, 8)) * 3, compiled=False)
    wide = AnomalyEnsemble(n_estimators=20).fit(rng.normal(size=(400, 16)))
    assert compile_scorer(wide, "c")._compiled_model is None


def _value() -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(-6.0, 6.0),
        st.sampled_from([0.0, -0.0, 1e100, -1e150, 1e155, 1e308, np.inf, -np.inf, np.nan]),
        st.floats(allow_nan=True, allow_infinity=True),
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(8)), elements=_value()),
    copies=st.lists(st.integers(0, 3999), max_size=3),
    median=st.booleans(),
)
def test_any_rows_give_the_reference_paths_arrays_or_error(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
    rows: NDArray[np.float64],
    copies: list[int],
    median: bool,
) -> None:
    model, X_train, scorer = fitted
    parts = [rows, X_train[copies]] + ([model.center_[None, :]] if median else [])
    assert_compiled_is_reference(scorer, np.ascontiguousarray(np.vstack(parts)))


def test_the_kernel_refuses_arrays_it_cannot_use(
    fitted: tuple[AnomalyEnsemble, NDArray[np.float64], FastScorer],
) -> None:
    """Wrong outputs raise; a malformed model is refused when it is compiled."""
    model, _, scorer = fitted
    X = rows_like_and_unlike_training(scorer, 2)
    outputs = [np.empty((2, 3)), np.empty((2, 3), bool), np.empty(2), np.empty(2),
               np.empty(2, bool), np.empty((2, 8))]  # fmt: skip
    args = (scorer._compiled_model, X, model.offsets_, model.scales_, 2)
    assert explain_rows(*args, *outputs, 1) == 0
    for i, wrong in enumerate([np.empty((2, 4)), np.empty((2, 3)), np.empty(3), np.empty(1),
                               np.empty(2), np.empty((2, 7))]):  # fmt: skip
        bad = list(outputs)
        bad[i] = wrong
        with pytest.raises((TypeError, ValueError)):
            explain_rows(*args, *bad, 1)
    with pytest.raises(ValueError, match="PyCapsule"):
        explain_rows(object(), X, model.offsets_, model.scales_, 2, *outputs, 1)
    assert explain_rows(scorer._compiled_model, X, model.offsets_, model.scales_, 4,
                        *outputs, 1) == 1  # fmt: skip
    broken = copy.copy(scorer)
    broken._blocks = dataclasses.replace(scorer._blocks, index=scorer._blocks.index + 10_000)
    with pytest.raises(ValueError, match="malformed"):
        broken._compile_model()


@pytest.mark.parametrize("n", [1, 7, 8, 9, 15, 16, 17])
def test_row_sums_are_pairwise_sums_in_a_batch(n: int) -> None:
    """The shares' denominator: ``np.add.reduce(w, axis=1)`` of a batch is each row's
    ``pairwise_sum``, the kernel's."""
    w = np.random.default_rng(n).lognormal(sigma=8.0, size=(50, n))
    totals = np.add.reduce(w, axis=1, keepdims=True)[:, 0]
    assert [pairwise_sum(row.copy(), 0, n) for row in w] == totals.tolist()

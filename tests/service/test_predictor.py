"""Predictor: rows -> matrix -> cache or model -> predictions, without HTTP."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly_api.artifacts import load_artifact
from anomaly_api.service.cache import InMemoryPredictionCache, prediction_keys
from anomaly_api.service.errors import InvalidFeaturesError
from anomaly_api.service.prediction_columns import PredictionCodec, PredictionColumns
from anomaly_api.service.predictor import FeatureRow, Predictor
from anomaly_api.service.scorer import build_scorer
from api_testing import ANOMALOUS, NORMAL, fit_two_versions

PREFIX = "test:"


def new_cache() -> InMemoryPredictionCache:
    return InMemoryPredictionCache(max_entries=1000, ttl_s=60.0)


def make_predictor(
    artifacts_dir: Path,
    version: str | None = None,
    *,
    cache: InMemoryPredictionCache | None = None,
    backend: str = "sklearn",
    offload_min_rows: int = 64,
) -> Predictor:
    artifact = load_artifact(artifacts_dir, version)
    return Predictor(
        artifact,
        scorer=build_scorer(artifact.model, backend),  # type: ignore[arg-type]
        cache=cache if cache is not None else new_cache(),
        cache_prefix=PREFIX,
        offload_min_rows=offload_min_rows,
    )


async def predict(predictor: Predictor, rows: Sequence[FeatureRow]) -> PredictionColumns:
    """The predictions of ``rows`` through the cache."""
    return (await predictor.score_rows(rows)).predictions


def same(a: PredictionColumns, b: PredictionColumns, *, but: str = "") -> bool:
    """Every field (but ``but``) holds the same values, -0.0 told from 0.0."""
    return all(
        repr(getattr(a, name).tolist()) == repr(getattr(b, name).tolist())
        for name in PredictionColumns.__slots__
        if name != but
    )


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_two_versions(tmp_path_factory.mktemp("predictor-versions"))


def test_rows_become_a_contiguous_float64_matrix(tiny_artifacts_dir: Path) -> None:
    predictor = make_predictor(tiny_artifacts_dir)
    named = {f"f{i}": v for i, v in reversed(list(enumerate(ANOMALOUS)))}
    X = predictor.to_matrix([NORMAL, named])
    assert X.dtype == np.float64
    assert X.flags.c_contiguous
    np.testing.assert_array_equal(X, np.array([NORMAL, ANOMALOUS]))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (NORMAL[:7], "expected 8 features, got 7"),
        ([*NORMAL, 0.0], "expected 8 features, got 9"),
        ({"f0": 1.0, "x": 2.0, "y": 3.0}, "unknown feature names ['x', 'y']"),
        ({f"f{i}": 0.0 for i in range(1, 8)}, "missing feature names ['f0']"),
    ],
)
def test_bad_rows_are_named(
    tiny_artifacts_dir: Path, row: list[float] | dict[str, float], message: str
) -> None:
    predictor = make_predictor(tiny_artifacts_dir)
    with pytest.raises(InvalidFeaturesError, match=message.replace("[", r"\[")) as single:
        predictor.to_matrix([row])
    assert not single.value.message.startswith("observations")
    with pytest.raises(InvalidFeaturesError) as batch:
        predictor.to_matrix([NORMAL, NORMAL, row], label_rows=True)
    assert batch.value.message == f"observations[2]: {single.value.message}"


async def test_predictions_agree_with_the_ensemble(tiny_artifacts_dir: Path) -> None:
    predictor = make_predictor(tiny_artifacts_dir)
    got = await predict(predictor, [NORMAL, ANOMALOUS])
    expected = predictor.model.explain(np.array([NORMAL, ANOMALOUS]))
    assert got.is_anomaly.tolist() == [False, True]
    np.testing.assert_array_equal(got.anomaly_score, expected.anomaly_score, strict=True)
    np.testing.assert_array_equal(got.confidence, expected.confidence, strict=True)
    np.testing.assert_array_equal(got.scores, expected.scores, strict=True)
    np.testing.assert_array_equal(got.votes, expected.votes, strict=True)
    assert got.cached.tolist() == [False, False]


async def test_fast_and_reference_backends_agree(tiny_artifacts_dir: Path) -> None:
    rng = np.random.default_rng(7)
    rows = np.vstack([rng.normal(size=(200, 8)), rng.normal(scale=6.0, size=(50, 8))]).tolist()
    reference = await predict(make_predictor(tiny_artifacts_dir, backend="sklearn"), rows)
    fast = await predict(make_predictor(tiny_artifacts_dir, backend="fast"), rows)
    np.testing.assert_array_equal(fast.is_anomaly, reference.is_anomaly)
    np.testing.assert_array_equal(fast.votes, reference.votes)
    for f, r in zip(fast.anomaly_score.tolist(), reference.anomaly_score.tolist(), strict=True):
        assert math.isclose(f, r, rel_tol=1e-9, abs_tol=1e-9)


async def test_cached_answers_are_identical(tiny_artifacts_dir: Path) -> None:
    cache = new_cache()
    predictor = make_predictor(tiny_artifacts_dir, cache=cache)
    fresh = await predict(predictor, [ANOMALOUS])
    again = await predict(predictor, [ANOMALOUS])
    assert (fresh.cached.tolist(), again.cached.tolist()) == ([False], [True])
    assert same(fresh, again, but="cached")
    assert cache.hits == 1


async def test_inline_and_offloaded_scoring_agree(tiny_artifacts_dir: Path) -> None:
    rows = np.random.default_rng(3).normal(size=(100, 8)).tolist()
    inline = await predict(make_predictor(tiny_artifacts_dir, offload_min_rows=1000), rows)
    offloaded = await predict(make_predictor(tiny_artifacts_dir, offload_min_rows=1), rows)
    assert same(inline, offloaded)


@pytest.mark.parametrize("backend", ["fast", "sklearn"])
def test_one_row_alone_is_scored_as_inside_a_batch(tiny_artifacts_dir: Path, backend: str) -> None:
    """A row scored alone (``/predict``) has the bits it has inside a batch."""
    predictor = make_predictor(tiny_artifacts_dir, backend=backend)
    rng = np.random.default_rng(11)
    X = np.vstack(
        [rng.normal(size=(150, 8)), rng.normal(scale=8.0, size=(40, 8)), np.full((1, 8), 1e150)]
    )
    batch = predictor.score(X)
    for i in range(X.shape[0]):
        alone = predictor.score(np.ascontiguousarray(X[i : i + 1]))
        row = PredictionColumns(
            **{name: getattr(batch, name)[i : i + 1] for name in PredictionColumns.__slots__}
        )
        assert same(alone, row), i


async def test_versions_sharing_a_cache_never_share_answers(two_versions: Path) -> None:
    cache = new_cache()
    first = make_predictor(two_versions, "tiny-1", cache=cache)
    second = make_predictor(two_versions, "tiny-2", cache=cache)
    one = await predict(first, [NORMAL])
    two = await predict(second, [NORMAL])
    assert two.cached.tolist() == [False]
    assert one.anomaly_score[0] != two.anomaly_score[0]
    one_again = await predict(first, [NORMAL])
    assert one_again.cached.tolist() == [True]
    assert one_again.anomaly_score[0] == one.anomaly_score[0]
    assert len(cache) == 2


async def test_an_unreadable_cache_entry_is_a_miss(tiny_artifacts_dir: Path) -> None:
    cache = new_cache()
    predictor = make_predictor(tiny_artifacts_dir, cache=cache)
    (key,) = prediction_keys(PREFIX, predictor.version, np.array([NORMAL]))
    await cache.set_many({key: b"not a prediction"})
    assert (await predict(predictor, [NORMAL])).cached.tolist() == [False]
    # the bad entry was overwritten
    assert (await predict(predictor, [NORMAL])).cached.tolist() == [True]


def _columns(n: int) -> PredictionColumns:
    rng = np.random.default_rng(5)
    score = rng.normal(size=n)
    score[0] = 1.7976931348623157e308
    return PredictionColumns(
        is_anomaly=np.arange(n) % 2 == 1,
        anomaly_score=score,
        confidence=rng.uniform(0.5, 1.0, size=n),
        severity=rng.uniform(size=n),
        scores=np.vstack([[-0.1, -5e-324, 3.0], rng.normal(size=(n - 1, 3))]),
        votes=np.column_stack([np.arange(n) % 3 > 0, np.ones(n, bool), np.zeros(n, bool)]),
        shares=rng.dirichlet(np.ones(4), size=n),
        cached=np.zeros(n, dtype=bool),
    )


def test_codec_round_trips_exactly_in_the_stored_layout() -> None:
    """Each row is stored as the tag, little-endian doubles (score, confidence, severity,
    scores, shares) and booleans (decision, votes): the layout entries already in a shared
    cache have, so they still read as hits."""
    codec = PredictionCodec(3, 4)
    columns = _columns(7)
    blobs = codec.encode(columns)
    layout = struct.Struct("<10d4?")
    for i, blob in enumerate(blobs):
        assert blob == b"\x02" + layout.pack(
            columns.anomaly_score[i],
            columns.confidence[i],
            columns.severity[i],
            *columns.scores[i].tolist(),
            *columns.shares[i].tolist(),
            bool(columns.is_anomaly[i]),
            *columns.votes[i].tolist(),
        )
    assert all(codec.valid(blob) for blob in blobs)
    assert not codec.valid(blobs[0][:-1])
    # Entries of the format before severity and contributions (tag 1) read as misses.
    assert not codec.valid(b"\x01" + blobs[0][1:])
    decoded = codec.decode(blobs)
    assert decoded.cached.tolist() == [True] * 7
    assert same(decoded, columns, but="cached")


def _reading() -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(-8.0, 8.0),
        st.sampled_from([0.0, -0.0, 1e150, -1e155, 1e308, -1.7976931348623157e308]),
        st.floats(allow_nan=False, allow_infinity=False),
    )


@pytest.fixture(scope="module")
def compiled_and_plain(tiny_artifacts_dir: Path) -> tuple[Predictor, Predictor]:
    """Fast-backend predictors: with the compiled rule, and with its reference path only."""
    compiled = make_predictor(tiny_artifacts_dir, backend="fast")
    assert compiled.scorer._compiled_model is not None  # type: ignore[attr-defined]
    plain = make_predictor(tiny_artifacts_dir, backend="fast")
    plain.scorer._compiled_model = None  # type: ignore[attr-defined]
    return compiled, plain


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.lists(_reading(), min_size=8, max_size=8), min_size=1, max_size=5),
    copies=st.integers(0, 3),
)
def test_the_compiled_rule_answers_clips_and_refuses_as_the_reference_path(
    compiled_and_plain: tuple[Predictor, Predictor], rows: list[list[float]], copies: int
) -> None:
    """``score`` with the fast backend's one-call rule and with its reference path: the
    same columns (bit for bit, -0.0 told from 0.0), the same clipping of infinite scores,
    the same ``InvalidFeaturesError``."""
    compiled, plain = compiled_and_plain
    X = np.array(rows + [NORMAL] * copies, dtype=np.float64)

    def result(predictor: Predictor) -> object:
        try:
            columns = predictor.score(X)
        except InvalidFeaturesError as exc:
            return exc.message
        return {name: repr(getattr(columns, name).tolist()) for name in PredictionColumns.__slots__}

    assert result(compiled) == result(plain)

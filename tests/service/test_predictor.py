"""Predictor: rows -> matrix -> cache or model -> predictions, without HTTP."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from anomaly_api.artifacts import load_artifact
from anomaly_api.service.cache import InMemoryPredictionCache, prediction_keys
from anomaly_api.service.errors import InvalidFeaturesError
from anomaly_api.service.prediction import Prediction, PredictionCodec, PredictionColumns
from anomaly_api.service.predictor import Predictor
from anomaly_api.service.scoring import build_scorer
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
    normal, anomalous = await predictor.predict([NORMAL, ANOMALOUS])
    expected = predictor.model.explain(np.array([NORMAL, ANOMALOUS]))
    assert (normal.is_anomaly, anomalous.is_anomaly) == (False, True)
    for prediction, row in zip((normal, anomalous), range(2), strict=True):
        assert prediction.anomaly_score == expected.anomaly_score[row]
        assert prediction.confidence == expected.confidence[row]
        assert prediction.scores == tuple(expected.scores[row])
        assert prediction.votes == tuple(expected.votes[row])
        assert prediction.cached is False


async def test_fast_and_reference_backends_agree(tiny_artifacts_dir: Path) -> None:
    rng = np.random.default_rng(7)
    rows = np.vstack([rng.normal(size=(200, 8)), rng.normal(scale=6.0, size=(50, 8))]).tolist()
    reference = await make_predictor(tiny_artifacts_dir, backend="sklearn").predict(rows)
    fast = await make_predictor(tiny_artifacts_dir, backend="fast").predict(rows)
    assert [p.is_anomaly for p in fast] == [p.is_anomaly for p in reference]
    assert [p.votes for p in fast] == [p.votes for p in reference]
    for f, r in zip(fast, reference, strict=True):
        assert math.isclose(f.anomaly_score, r.anomaly_score, rel_tol=1e-9, abs_tol=1e-9)


async def test_cached_answers_are_identical(tiny_artifacts_dir: Path) -> None:
    cache = new_cache()
    predictor = make_predictor(tiny_artifacts_dir, cache=cache)
    (fresh,) = await predictor.predict([ANOMALOUS])
    (again,) = await predictor.predict([ANOMALOUS])
    assert (fresh.cached, again.cached) == (False, True)
    assert again == dataclasses.replace(fresh, cached=True)
    assert cache.hits == 1


async def test_inline_and_offloaded_scoring_agree(tiny_artifacts_dir: Path) -> None:
    rows = np.random.default_rng(3).normal(size=(100, 8)).tolist()
    inline = await make_predictor(tiny_artifacts_dir, offload_min_rows=1000).predict(rows)
    offloaded = await make_predictor(tiny_artifacts_dir, offload_min_rows=1).predict(rows)
    assert inline == offloaded


@pytest.mark.parametrize("backend", ["fast", "sklearn"])
def test_one_row_alone_is_scored_as_inside_a_batch(tiny_artifacts_dir: Path, backend: str) -> None:
    """One row takes ``RowCombiner``'s plain-float path; a batch the NumPy one: same bits."""
    predictor = make_predictor(tiny_artifacts_dir, backend=backend)
    rng = np.random.default_rng(11)
    X = np.vstack(
        [rng.normal(size=(150, 8)), rng.normal(scale=8.0, size=(40, 8)), np.full((1, 8), 1e150)]
    )
    batch = predictor.score(X)
    alone = [predictor.score(np.ascontiguousarray(X[i : i + 1]))[0] for i in range(X.shape[0])]
    assert [repr(p) for p in alone] == [repr(p) for p in batch]  # repr: -0.0 and 0.0 differ


async def test_versions_sharing_a_cache_never_share_answers(two_versions: Path) -> None:
    cache = new_cache()
    first = make_predictor(two_versions, "tiny-1", cache=cache)
    second = make_predictor(two_versions, "tiny-2", cache=cache)
    (one,) = await first.predict([NORMAL])
    (two,) = await second.predict([NORMAL])
    assert two.cached is False
    assert one.anomaly_score != two.anomaly_score
    (one_again,) = await first.predict([NORMAL])
    assert one_again.cached is True
    assert one_again.anomaly_score == one.anomaly_score
    assert len(cache) == 2


async def test_an_unreadable_cache_entry_is_a_miss(tiny_artifacts_dir: Path) -> None:
    cache = new_cache()
    predictor = make_predictor(tiny_artifacts_dir, cache=cache)
    (key,) = prediction_keys(PREFIX, predictor.version, np.array([NORMAL]))
    await cache.set_many({key: b"not a prediction"})
    (prediction,) = await predictor.predict([NORMAL])
    assert prediction.cached is False
    (again,) = await predictor.predict([NORMAL])  # the bad entry was overwritten
    assert again.cached is True


def test_codec_round_trips_exactly() -> None:
    codec = PredictionCodec(3, 4)
    prediction = Prediction(
        is_anomaly=True,
        anomaly_score=1.7976931348623157e308,
        confidence=0.5000000000000001,
        scores=(-0.1, -5e-324, 3.0),
        votes=(True, False, True),
        severity=0.9999999999999999,
        shares=(0.1, 0.2, 0.30000000000000004, 0.39999999999999997),
    )
    decoded = codec.decode(codec.encode(prediction))
    assert decoded == dataclasses.replace(prediction, cached=True)
    assert codec.decode(codec.encode(prediction)[:-1]) is None
    # Entries of the format before severity and contributions (tag 1) read as misses.
    assert codec.decode(b"\x01" + codec.encode(prediction)[1:]) is None


def test_codec_packs_columns_as_it_packs_rows() -> None:
    """``encode_many`` writes each row's ``encode`` bytes; ``decode_many`` reads them back."""
    codec = PredictionCodec(3, 4)
    rng = np.random.default_rng(5)
    rows = [
        Prediction(
            is_anomaly=bool(i % 2),
            anomaly_score=float(rng.normal()) if i else 1.7976931348623157e308,
            confidence=float(rng.uniform(0.5, 1.0)),
            scores=tuple(rng.normal(size=3).tolist()),
            votes=(bool(i % 3), True, False),
            severity=float(rng.uniform()),
            shares=tuple(rng.dirichlet(np.ones(4)).tolist()),
        )
        for i in range(7)
    ]
    columns = PredictionColumns(
        is_anomaly=np.array([p.is_anomaly for p in rows]),
        anomaly_score=np.array([p.anomaly_score for p in rows]),
        confidence=np.array([p.confidence for p in rows]),
        severity=np.array([p.severity for p in rows]),
        scores=np.array([p.scores for p in rows]),
        votes=np.array([p.votes for p in rows]),
        shares=np.array([p.shares for p in rows]),
        cached=np.zeros(len(rows), dtype=bool),
    )
    assert columns.to_predictions() == rows
    blobs = codec.encode_many(columns)
    assert blobs == [codec.encode(p) for p in rows]
    assert all(codec.valid(blob) for blob in blobs)
    assert not codec.valid(blobs[0][:-1])
    decoded = codec.decode_many(blobs).to_predictions()
    assert decoded == [dataclasses.replace(p, cached=True) for p in rows]

"""DataPlane: rows in, answers out (the JSON of the answer dataclasses, byte for byte),
every prediction metric recorded, hooks called."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families

from anomaly_api.service.answers import (
    Answer,
    BatchAnswer,
    ColumnarBatchAnswer,
    Contribution,
    DetectorVerdict,
)
from anomaly_api.service.dataplane import DataPlane, ScoredBatch
from anomaly_api.service.errors import (
    InvalidFeaturesError,
    ModelNotReadyError,
)
from anomaly_api.service.metrics import ServiceMetrics
from anomaly_api.service.prediction_columns import PredictionColumns
from anomaly_api.service.runtime import ServiceRuntime
from api_testing import ANOMALOUS, NORMAL, make_settings
from factories import answer_batches


def _sample(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


@pytest.fixture
async def runtime(tiny_artifacts_dir: Path) -> AsyncIterator[ServiceRuntime]:
    started = ServiceRuntime.start(make_settings(tiny_artifacts_dir))
    yield started
    await started.close()


def reference_answer(batch: ColumnarBatchAnswer) -> BatchAnswer:
    """The ``BatchAnswer`` dataclasses of ``batch``, built row by row in plain Python (each
    row's contributions sorted by Python's stable sort): what its JSON must be."""
    cols = batch.predictions
    answers = []
    for i, shares in enumerate(cols.shares.tolist()):
        order = sorted(range(len(shares)), key=shares.__getitem__, reverse=True)[: batch.top_k]
        answers.append(
            Answer(
                observation_id=batch.observation_ids[i],
                is_anomaly=bool(cols.is_anomaly[i]),
                anomaly_score=float(cols.anomaly_score[i]),
                confidence=float(cols.confidence[i]),
                severity=float(cols.severity[i]),
                contributions=[Contribution(batch.feature_names[j], shares[j]) for j in order],
                model_version=batch.model_version,
                inference_ms=batch.inference_ms,
                detectors={
                    name: DetectorVerdict(score, threshold, vote)
                    for name, score, threshold, vote in zip(
                        batch.detector_names,
                        cols.scores[i].tolist(),
                        batch.thresholds,
                        cols.votes[i].tolist(),
                        strict=True,
                    )
                },
                cached=bool(cols.cached[i]),
            )
        )
    n_anomalies = sum(answer.is_anomaly for answer in answers)
    return BatchAnswer(answers, n_anomalies, batch.model_version, batch.inference_ms)


def predictions_of(batch: ColumnarBatchAnswer) -> list[Answer]:
    """The answers of ``batch``, checked to be its JSON byte for byte."""
    reference = reference_answer(batch)
    assert batch.to_json() == orjson.dumps(reference)
    return reference.predictions


async def test_answers_are_typed_in_order_with_ids(runtime: ServiceRuntime) -> None:
    batch = await DataPlane(runtime).predict([NORMAL, ANOMALOUS], ["a", None])
    first, second = predictions_of(batch)
    assert (first.observation_id, first.is_anomaly) == ("a", False)
    assert second.is_anomaly
    assert len(second.observation_id) == 32
    assert batch.n_anomalies == 1
    assert set(first.detectors) == {"isolation_forest", "local_outlier_factor", "zscore"}
    assert batch.model_version == first.model_version == runtime.require_predictor().version
    # orjson writes the dataclasses as the API's JSON, field for field.
    assert set(orjson.loads(orjson.dumps(first))) == {
        "observation_id",
        "is_anomaly",
        "anomaly_score",
        "confidence",
        "severity",
        "contributions",
        "model_version",
        "inference_ms",
        "detectors",
        "cached",
    }


async def test_answers_carry_severity_and_sorted_contributions(runtime: ServiceRuntime) -> None:
    dataplane = DataPlane(runtime)
    names = runtime.require_predictor().feature_names
    normal, anomalous = predictions_of(await dataplane.predict([NORMAL, ANOMALOUS]))
    assert normal.severity == 0.0
    assert 0.0 < anomalous.severity < 1.0
    for answer in (normal, anomalous):
        assert all(isinstance(c, Contribution) for c in answer.contributions)
        assert sorted(c.feature for c in answer.contributions) == sorted(names)
        shares = [c.share for c in answer.contributions]
        assert shares == sorted(shares, reverse=True)
        assert min(shares) >= 0.0
        assert sum(shares) == pytest.approx(1.0, abs=1e-12)
    (top,) = predictions_of(await dataplane.predict([ANOMALOUS], top_k=2))
    assert top.contributions == anomalous.contributions[:2]
    assert orjson.loads(orjson.dumps(top.contributions[0])) == {
        "feature": top.contributions[0].feature,
        "share": top.contributions[0].share,
        "why": None,
    }


async def test_cached_answers_equal_fresh_ones_but_for_the_flag(runtime: ServiceRuntime) -> None:
    dataplane = DataPlane(runtime)
    fresh = (await dataplane.predict([NORMAL, ANOMALOUS], ["a", "b"])).predictions
    cached = (await dataplane.predict([NORMAL, ANOMALOUS], ["a", "b"])).predictions
    assert fresh.cached.tolist() == [False, False]
    assert cached.cached.tolist() == [True, True]
    for name in PredictionColumns.__slots__:
        if name != "cached":
            np.testing.assert_array_equal(getattr(fresh, name), getattr(cached, name), strict=True)


async def test_every_prediction_metric_is_recorded_by_the_data_plane(
    runtime: ServiceRuntime,
) -> None:
    metrics = ServiceMetrics(anomaly_window=100)
    dataplane = DataPlane(runtime, metrics)
    await dataplane.predict([NORMAL, ANOMALOUS])
    await dataplane.predict([NORMAL])  # a cache hit: counted, but no model call
    assert _sample(metrics, "anomaly_predictions_total", outcome="anomaly") == 1
    assert _sample(metrics, "anomaly_predictions_total", outcome="normal") == 2
    assert _sample(metrics, "anomaly_batch_rows_count") == 2
    assert _sample(metrics, "anomaly_batch_rows_sum") == 3
    assert _sample(metrics, "anomaly_model_inference_seconds_count") == 1
    assert _sample(metrics, "anomaly_rolling_anomaly_rate") == pytest.approx(1 / 3)
    assert _sample(metrics, "anomaly_cache_operations_total", result="hit") == 1
    assert _sample(metrics, "anomaly_cache_operations_total", result="miss") == 2


async def test_hooks_see_each_scored_batch_and_cannot_break_it(
    runtime: ServiceRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[ScoredBatch] = []

    def broken(scored: ScoredBatch) -> None:
        raise RuntimeError("observer bug")

    dataplane = DataPlane(runtime)
    dataplane.add_hook(broken)
    dataplane.add_hook(seen.append)
    with caplog.at_level(logging.ERROR, logger="anomaly_api.service.dataplane"):
        batch = await dataplane.predict([NORMAL, NORMAL])
    assert len(batch.predictions) == 2
    assert "observer bug" in caplog.text
    (scored,) = seen
    assert scored.predictions is batch.predictions
    assert scored.n_anomalies == batch.n_anomalies == 0
    assert scored.X.shape == (2, 8)
    assert (scored.rows, scored.cache_hits) == (2, 0)  # one look-up for the whole batch
    assert scored.model_seconds is not None
    await dataplane.predict([NORMAL])
    assert (seen[-1].cache_hits, seen[-1].model_seconds) == (1, None)


async def test_errors_are_the_service_errors(tiny_artifacts_dir: Path, tmp_path: Path) -> None:
    empty = ServiceRuntime.start(make_settings(tmp_path))
    try:
        with pytest.raises(ModelNotReadyError):
            await DataPlane(empty).predict([NORMAL])
    finally:
        await empty.close()
    loaded = ServiceRuntime.start(make_settings(tiny_artifacts_dir))
    try:
        with pytest.raises(InvalidFeaturesError, match=r"^observations\[1\]: expected 8"):
            await DataPlane(loaded).predict([NORMAL, NORMAL[:3]])
    finally:
        await loaded.close()


@pytest.mark.parametrize(
    ("rows", "top_k"), [(1, None), (1, 3), (3, 2), (40, None), (300, 1), (64, 8)]
)
async def test_answers_are_the_answer_dataclasses_json_byte_for_byte(
    runtime: ServiceRuntime, rows: int, top_k: int | None
) -> None:
    """``predict(...).to_json()`` is ``orjson.dumps`` of the ``BatchAnswer`` built row by
    row (and ``answer_json`` of its one ``Answer``): fresh and cached rows mixed, ids that
    need escaping or hold commas, generated ids, readings so extreme that scores are
    clamped to the largest double, -0.0, ties."""
    rng = np.random.default_rng(rows)
    X = rng.normal(size=(rows, 8)) * rng.choice([1.0, 1e3, 1e140], size=(rows, 1))
    X[0, 0] = -0.0
    X[-1] = 1.0  # every share equal: ties in feature order
    ids = [None if i % 3 else f'id {i}, "quoted" é\n' for i in range(rows)]
    dataplane = DataPlane(runtime)
    if rows > 1:
        await dataplane.predict(X[: rows // 2])  # the first half is cached
    batch = await dataplane.predict(X, ids, top_k=top_k)
    assert batch.predictions.cached.tolist() == [i < rows // 2 for i in range(rows)]
    reference = reference_answer(batch)
    assert batch.to_json() == orjson.dumps(reference)
    if rows == 1:
        assert batch.answer_json() == orjson.dumps(reference.predictions[0])
    plain = await dataplane.predict(X, [f"r{i}" for i in range(rows)], top_k=top_k)
    assert plain.to_json() == orjson.dumps(reference_answer(plain))  # ids without commas
    # The same rows as lists give the same answers (all cached now).
    listed = await dataplane.predict(X.tolist(), plain.observation_ids, top_k=top_k)
    for name in PredictionColumns.__slots__:
        assert np.array_equal(getattr(listed.predictions, name), getattr(plain.predictions, name))
    # Every row decoded from the cache (its columns strided views of the records).
    assert listed.predictions.cached.all()
    assert listed.to_json() == orjson.dumps(reference_answer(listed))
    if rows == 1:
        assert listed.answer_json() == orjson.dumps(reference_answer(listed).predictions[0])


@given(answer_batches())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_columns_are_written_as_their_dataclasses_json(batch: ColumnarBatchAnswer) -> None:
    reference = reference_answer(batch)
    assert batch.to_json() == orjson.dumps(reference)
    if len(batch.predictions) == 1:
        assert batch.answer_json() == orjson.dumps(reference.predictions[0])


def test_each_models_thresholds_are_written_as_they_are() -> None:
    """The fragments made once per model are told apart by the thresholds' text: 0.0 and
    -0.0 are equal floats, written differently."""
    columns = PredictionColumns(
        is_anomaly=np.array([True]),
        anomaly_score=np.array([0.5]),
        confidence=np.array([0.6]),
        severity=np.array([0.3]),
        scores=np.array([[-0.25, 1.0]]),
        votes=np.array([[True, False]]),
        shares=np.array([[0.75, 0.25]]),
        cached=np.array([False]),
    )
    for zero in (0.0, -0.0, 0.0):
        batch = ColumnarBatchAnswer(
            columns, ["r"], ["a", "b"], ["d1", "d2"], [zero, 2.0], "v1", 1.5, None
        )
        reference = reference_answer(batch)
        assert batch.answer_json() == orjson.dumps(reference.predictions[0])
        assert batch.to_json() == orjson.dumps(reference)


async def test_hooks_see_the_rows_hits_and_flags(runtime: ServiceRuntime) -> None:
    seen: list[ScoredBatch] = []
    dataplane = DataPlane(runtime)
    dataplane.add_hook(seen.append)
    await dataplane.predict(np.array([NORMAL]))
    batch = await dataplane.predict(np.array([NORMAL, ANOMALOUS, NORMAL]))
    scored = seen[-1]
    assert scored.predictions is batch.predictions
    assert (scored.rows, scored.cache_hits, scored.n_anomalies) == (3, 2, 1)
    assert scored.anomaly_flags().tolist() == [False, True, False]


async def test_matrix_errors_are_the_lists(runtime: ServiceRuntime) -> None:
    dataplane = DataPlane(runtime)
    with pytest.raises(
        InvalidFeaturesError, match=r"^observations\[0\]: expected 8 features, got 3"
    ):
        await dataplane.predict(np.zeros((2, 3)))
    with pytest.raises(InvalidFeaturesError, match=r"^observations\[1\]: expected 8"):
        await dataplane.predict([NORMAL, NORMAL[:3]])

"""DataPlane: rows in, typed answers out, every prediction metric recorded, hooks called."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from anomaly_api.service.answers import Answer, BatchAnswer, Contribution
from anomaly_api.service.dataplane import DataPlane, ScoredBatch
from anomaly_api.service.errors import (
    InvalidFeaturesError,
    InvalidInputError,
    ModelNotReadyError,
)
from anomaly_api.service.metrics import ServiceMetrics
from anomaly_api.service.runtime import ServiceRuntime
from api_testing import ANOMALOUS, NORMAL, make_settings


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


async def test_answers_are_typed_in_order_with_ids(runtime: ServiceRuntime) -> None:
    batch = await DataPlane(runtime).predict([NORMAL, ANOMALOUS], ["a", None])
    assert isinstance(batch, BatchAnswer)
    assert all(isinstance(answer, Answer) for answer in batch.predictions)
    first, second = batch.predictions
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
    normal, anomalous = (await dataplane.predict([NORMAL, ANOMALOUS])).predictions
    assert normal.severity == 0.0
    assert 0.0 < anomalous.severity < 1.0
    for answer in (normal, anomalous):
        assert all(isinstance(c, Contribution) for c in answer.contributions)
        assert sorted(c.feature for c in answer.contributions) == sorted(names)
        shares = [c.share for c in answer.contributions]
        assert shares == sorted(shares, reverse=True)
        assert min(shares) >= 0.0
        assert sum(shares) == pytest.approx(1.0, abs=1e-12)
    (top,) = (await dataplane.predict([ANOMALOUS], top_k=2)).predictions
    assert top.contributions == anomalous.contributions[:2]
    assert orjson.loads(orjson.dumps(top.contributions[0])) == {
        "feature": top.contributions[0].feature,
        "share": top.contributions[0].share,
        "why": None,
    }


@pytest.mark.parametrize("top_k", [0, 9])
async def test_top_k_outside_the_features_is_invalid_input(
    runtime: ServiceRuntime, top_k: int
) -> None:
    with pytest.raises(InvalidInputError, match="top_k must be between 1 and 8"):
        await DataPlane(runtime).predict([NORMAL], top_k=top_k)


async def test_cached_answers_equal_fresh_ones_but_for_the_flag(runtime: ServiceRuntime) -> None:
    dataplane = DataPlane(runtime)
    fresh = (await dataplane.predict([NORMAL, ANOMALOUS], ["a", "b"])).predictions
    cached = (await dataplane.predict([NORMAL, ANOMALOUS], ["a", "b"])).predictions
    assert [a.cached for a in fresh] == [False, False]
    assert [a.cached for a in cached] == [True, True]
    for before, after in zip(fresh, cached, strict=True):
        assert dataclasses.replace(after, cached=False, inference_ms=before.inference_ms) == before


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
    assert scored.answer is batch
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


@pytest.mark.parametrize("rows", [1, 40])
async def test_contributions_are_sorted_the_same_on_both_sort_paths(
    runtime: ServiceRuntime, rows: int
) -> None:
    """A few rows are sorted in Python, many with one NumPy argsort: the same order."""
    names = runtime.require_predictor().feature_names
    readings = [[float((i * 7 + j) % 5) for j in range(len(names))] for i in range(rows)]
    answers = (await DataPlane(runtime).predict(readings, top_k=3)).predictions
    for answer, reading in zip(answers, readings, strict=True):
        predictor = runtime.require_predictor()
        (prediction,) = predictor.score(np.array([reading]))
        expected = sorted(range(len(names)), key=lambda i, s=prediction.shares: (-s[i], i))[:3]
        assert [c.feature for c in answer.contributions] == [names[i] for i in expected]
        assert [c.share for c in answer.contributions] == [prediction.shares[i] for i in expected]

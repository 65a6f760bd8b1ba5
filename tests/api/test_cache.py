"""The prediction cache seen through the API: hits, misses, identity and version isolation,
and which cache ``ANOMALY_PREDICTION_CACHE`` picks.

Runs against the in-process cache and the real Redis on 127.0.0.1:6379 (a key prefix of
its own per test, deleted afterwards).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from anomaly_api.config import Settings
from anomaly_api.testing import SHARED_REDIS_URL
from api_testing import (
    ANOMALOUS,
    NORMAL,
    fit_two_versions,
    make_settings,
    samples,
    serve_app,
)
from factories import fit_tiny_artifact

BACKENDS = ["memory", "redis"]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test alone on the shared Redis; its keys are deleted after."""
    prefix = f"test:api:{uuid.uuid4().hex}:"
    yield prefix
    with redis.Redis.from_url(SHARED_REDIS_URL) as connection:
        keys = list(connection.scan_iter(match=prefix + "*", count=1000))
        if keys:
            connection.delete(*keys)


def backend_settings(artifacts_dir: Path, backend: str, prefix: str, **extra: object) -> Settings:
    if backend == "redis":
        return make_settings(
            artifacts_dir,
            redis_url=SHARED_REDIS_URL,
            prediction_cache="redis",
            cache_prefix=prefix,
            redis_timeout_s=2.0,  # behaviour, not latency, on a possibly busy CI machine
            **extra,
        )
    return make_settings(artifacts_dir, cache_prefix=prefix, **extra)


def without_volatile(prediction: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in prediction.items() if k not in ("cached", "inference_ms")}


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_two_versions(tmp_path_factory.mktemp("two-versions"))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_second_request_is_a_hit_with_the_same_answer(
    tiny_artifacts_dir: Path, backend: str, redis_prefix: str
) -> None:
    async with serve_app(backend_settings(tiny_artifacts_dir, backend, redis_prefix)) as http:
        health = (await http.get("/health")).json()
        assert health["cache"] == {"backend": backend, "ok": True}
        first = (await http.post("/predict", json={"features": ANOMALOUS})).json()
        # A different observation_id must not defeat the cache.
        second = (
            await http.post("/predict", json={"features": ANOMALOUS, "observation_id": "other"})
        ).json()
        assert first["cached"] is False
        assert second["cached"] is True
        assert second["observation_id"] == "other"
        first.pop("observation_id")
        second.pop("observation_id")
        assert without_volatile(first) == without_volatile(second)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_batch_mixes_hits_and_misses(
    tiny_artifacts_dir: Path, backend: str, redis_prefix: str
) -> None:
    async with serve_app(backend_settings(tiny_artifacts_dir, backend, redis_prefix)) as http:
        single = (await http.post("/predict", json={"features": NORMAL})).json()
        rows = [NORMAL, ANOMALOUS, NORMAL]
        batch = (
            await http.post(
                "/predict/batch", json={"observations": [{"features": r} for r in rows]}
            )
        ).json()["predictions"]
        assert [p["cached"] for p in batch] == [True, False, True]
        for item in (batch[0], batch[2]):
            assert item["anomaly_score"] == single["anomaly_score"]
            assert item["detectors"] == single["detectors"]
        again = (
            await http.post(
                "/predict/batch", json={"observations": [{"features": r} for r in rows]}
            )
        ).json()["predictions"]
        assert all(p["cached"] for p in again)
        assert [without_volatile(p) | {"observation_id": None} for p in again] == [
            without_volatile(p) | {"observation_id": None} for p in batch
        ]


async def test_equal_readings_share_a_key(tiny_artifacts_dir: Path) -> None:
    """The key hashes the float64 row, not the JSON text: 1 and 1.0 are the same reading."""
    async with serve_app(make_settings(tiny_artifacts_dir)) as http:
        await http.post("/predict", json={"features": [1, 0, 2, 0, 1, 0, 3, 0]})
        again = await http.post(
            "/predict", json={"features": [1.0, 0.0, 2.0, -0.0, 1e0, 0.0, 3.0, 0.0]}
        )
        named = await http.post(
            "/predict",
            json={"features": {f"f{i}": v for i, v in enumerate([1, 0, 2, 0, 1, 0, 3, 0])}},
        )
        assert again.json()["cached"] is True
        assert named.json()["cached"] is True


async def test_versions_never_share_answers(two_versions: Path, redis_prefix: str) -> None:
    """Two model versions on one Redis with the same prefix: each computes its own answers."""
    answers = {}
    for version in ("tiny-1", "tiny-2", "tiny-1"):
        settings = backend_settings(two_versions, "redis", redis_prefix, model_version=version)
        async with serve_app(settings) as http:
            body = (await http.post("/predict", json={"features": ANOMALOUS})).json()
        assert body["model_version"] == version
        if version in answers:
            assert body["cached"] is True  # the first tiny-1 app wrote it
            assert without_volatile(body) | {"observation_id": ""} == without_volatile(
                answers[version]
            ) | {"observation_id": ""}
        else:
            assert body["cached"] is False  # never the other version's entry
            answers[version] = body
    assert answers["tiny-1"]["anomaly_score"] != answers["tiny-2"]["anomaly_score"]
    with redis.Redis.from_url(SHARED_REDIS_URL) as connection:
        keys = sorted(k.decode() for k in connection.scan_iter(match=redis_prefix + "*"))
    assert [k.split(":")[-2] for k in keys] == ["tiny-1", "tiny-2"]


async def test_reloading_the_same_directory_after_retraining(
    tmp_path: Path, tiny_artifacts_dir: Path, redis_prefix: str
) -> None:
    """LATEST moves to a new version: the restarted service misses instead of serving stale."""
    root = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts_dir, root)
    settings = backend_settings(root, "redis", redis_prefix)
    async with serve_app(settings) as http:
        old = (await http.post("/predict", json={"features": NORMAL})).json()
    fit_tiny_artifact(root, version="tiny-2", seed=3)
    async with serve_app(settings) as http:
        new = (await http.post("/predict", json={"features": NORMAL})).json()
    assert (old["model_version"], new["model_version"]) == ("tiny-1", "tiny-2")
    assert new["cached"] is False


async def test_redis_entries_expire_with_the_configured_ttl(
    tiny_artifacts_dir: Path, redis_prefix: str
) -> None:
    settings = backend_settings(tiny_artifacts_dir, "redis", redis_prefix, cache_ttl_s=120.0)
    async with serve_app(settings) as http:
        await http.post("/predict", json={"features": NORMAL})
    with redis.Redis.from_url(SHARED_REDIS_URL) as connection:
        (key,) = list(connection.scan_iter(match=redis_prefix + "*"))
        assert 0 < connection.ttl(key) <= 120


async def test_client_fixture_is_isolated(client: httpx.AsyncClient) -> None:
    """Each test's app starts with an empty cache (so cached=False tests are meaningful)."""
    response = await client.post("/predict", json={"features": NORMAL})
    assert response.json()["cached"] is False


def _keys_under(prefix: str) -> list[bytes]:
    with redis.Redis.from_url(SHARED_REDIS_URL) as connection:
        return list(connection.scan_iter(match=prefix + "*", count=1000))


async def test_a_redis_url_alone_keeps_the_cache_in_the_process(
    tiny_artifacts_dir: Path, redis_prefix: str
) -> None:
    """Redis is there for streams and revisions; /predict never calls it for the cache."""
    settings = make_settings(
        tiny_artifacts_dir,
        redis_url=SHARED_REDIS_URL,
        cache_prefix=f"{redis_prefix}c:",
        stream_prefix=f"{redis_prefix}s:",
        revision_prefix=f"{redis_prefix}r:",
    )
    assert settings.prediction_cache == "memory"
    async with serve_app(settings) as http:
        assert (await http.get("/health")).json()["cache"] == {"backend": "memory", "ok": True}
        first = (await http.post("/predict", json={"features": NORMAL})).json()
        again = (await http.post("/predict", json={"features": NORMAL})).json()
        batch = await http.post(
            "/predict/batch", json={"observations": [{"features": NORMAL}, {"features": ANOMALOUS}]}
        )
        assert [p["cached"] for p in batch.json()["predictions"]] == [True, False]
    assert (first["cached"], again["cached"]) == (False, True)
    assert _keys_under(f"{redis_prefix}c:") == []


async def test_a_redis_cache_without_a_redis_url_is_refused() -> None:
    with pytest.raises(ValueError, match="ANOMALY_PREDICTION_CACHE=redis needs ANOMALY_REDIS_URL"):
        Settings(_env_file=None, redis_url=None, prediction_cache="redis")  # type: ignore[call-arg]


async def test_off_caches_nothing_and_counts_every_row_a_miss(
    tiny_artifacts_dir: Path, redis_prefix: str
) -> None:
    settings = make_settings(
        tiny_artifacts_dir,
        prediction_cache="off",
        redis_url=SHARED_REDIS_URL,
        cache_prefix=f"{redis_prefix}c:",
        stream_prefix=f"{redis_prefix}s:",
        revision_prefix=f"{redis_prefix}r:",
    )
    body = {"observations": [{"features": NORMAL}, {"features": NORMAL}]}
    async with serve_app(settings) as http:
        assert (await http.get("/health")).json()["cache"] == {"backend": "off", "ok": True}
        answers = [(await http.post("/predict", json={"features": NORMAL})).json() for _ in "ab"]
        batch = (await http.post("/predict/batch", json=body)).json()["predictions"]
        metrics = samples((await http.get("/metrics")).text)
    assert [a["cached"] for a in answers + batch] == [False] * 4
    assert without_volatile(answers[0]) | {"observation_id": ""} == without_volatile(answers[1]) | {
        "observation_id": ""
    }
    ops = "anomaly_cache_operations_total"
    assert metrics[(ops, (("result", "miss"),))] == 4
    assert metrics[(ops, (("result", "hit"),))] == 0
    assert _keys_under(f"{redis_prefix}c:") == []

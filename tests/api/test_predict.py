"""POST /predict and /predict/batch: the seed's bodies, both feature forms, batches."""

from __future__ import annotations

import httpx
import pytest

from anomaly_api.api.schemas import PredictBatchResponse, PredictResponse
from anomaly_api.config import Settings
from api_testing import ANOMALOUS, NORMAL, open_app

DETECTORS = {"isolation_forest", "local_outlier_factor", "zscore"}
FEATURE_NAMES = [f"f{i}" for i in range(8)]
PREDICTION_FIELDS = {
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


def assert_consistent(prediction: dict[str, object]) -> None:
    """The fields match the declared schema and agree as the score definition says."""
    PredictResponse.model_validate(prediction, strict=True)
    assert set(prediction) == PREDICTION_FIELDS
    detectors = prediction["detectors"]
    assert isinstance(detectors, dict)
    assert set(detectors) == DETECTORS
    for verdict in detectors.values():
        assert set(verdict) == {"score", "threshold", "vote"}
        assert verdict["vote"] == (verdict["score"] < verdict["threshold"])
    votes = sum(verdict["vote"] for verdict in detectors.values())
    assert prediction["is_anomaly"] == (votes >= 2)
    assert prediction["is_anomaly"] == (prediction["anomaly_score"] > 0)  # type: ignore[operator]
    assert 0.5 <= prediction["confidence"] <= 1.0  # type: ignore[operator]
    assert prediction["inference_ms"] >= 0  # type: ignore[operator]
    severity = prediction["severity"]
    assert isinstance(severity, float)
    assert 0.0 <= severity < 1.0
    assert (severity > 0.0) == prediction["is_anomaly"]
    assert_contributions(prediction, k=len(FEATURE_NAMES))


def assert_contributions(prediction: dict[str, object], k: int) -> None:
    """``k`` distinct features, largest share first, shares non-negative; all of them sum to 1."""
    contributions = prediction["contributions"]
    assert isinstance(contributions, list)
    assert len(contributions) == k
    assert all(set(c) == {"feature", "share", "why"} for c in contributions)
    assert all(c["why"] is None for c in contributions)
    features = [c["feature"] for c in contributions]
    assert len(set(features)) == k
    assert set(features) <= set(FEATURE_NAMES)
    shares = [c["share"] for c in contributions]
    assert all(share >= 0.0 for share in shares)
    assert shares == sorted(shares, reverse=True)
    if k == len(FEATURE_NAMES):
        assert sum(shares) == pytest.approx(1.0, abs=1e-12)
    else:
        assert sum(shares) <= 1.0 + 1e-12


async def test_seed_normal_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/predict", json={"features": NORMAL, "observation_id": "sensor_42_t1234"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_consistent(body)
    assert body["observation_id"] == "sensor_42_t1234"
    assert body["model_version"] == "tiny-1"
    assert body["is_anomaly"] is False
    assert body["cached"] is False
    assert body["severity"] == 0.0


async def test_seed_anomalous_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/predict", json={"features": ANOMALOUS, "observation_id": "sensor_42_t1234"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_consistent(body)
    assert body["is_anomaly"] is True
    assert body["anomaly_score"] > 0
    assert body["confidence"] > 0.9
    assert body["severity"] > 0.0


async def test_observation_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = (await client.post("/predict", json={"features": NORMAL})).json()
    second = (await client.post("/predict", json={"features": NORMAL})).json()
    assert len(first["observation_id"]) == 32
    int(first["observation_id"], 16)  # 128 random bits in hex
    assert first["observation_id"] != second["observation_id"]


async def test_integers_are_numbers(client: httpx.AsyncClient) -> None:
    as_ints = await client.post("/predict", json={"features": [0, 1, 0, 1, 1, 0, 0, 1]})
    as_floats = await client.post(
        "/predict", json={"features": [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]}
    )
    assert as_ints.status_code == 200, as_ints.text
    assert as_ints.json()["anomaly_score"] == as_floats.json()["anomaly_score"]


async def test_features_keyed_by_name_match_the_array_form(client: httpx.AsyncClient) -> None:
    named = {f"f{i}": value for i, value in enumerate(ANOMALOUS)}
    shuffled = dict(reversed(list(named.items())))
    by_array = (await client.post("/predict", json={"features": ANOMALOUS})).json()
    by_name = (await client.post("/predict", json={"features": shuffled})).json()
    for field in ("is_anomaly", "anomaly_score", "confidence", "severity", "contributions"):
        assert by_name[field] == by_array[field]
    assert by_name["detectors"] == by_array["detectors"]


async def test_batch_of_the_seed_bodies(client: httpx.AsyncClient) -> None:
    observations = [
        {"features": NORMAL, "observation_id": "a"},
        {"features": ANOMALOUS, "observation_id": "b"},
        {"features": {f"f{i}": v for i, v in enumerate(NORMAL)}},
    ]
    response = await client.post("/predict/batch", json={"observations": observations})
    assert response.status_code == 200, response.text
    body = response.json()
    PredictBatchResponse.model_validate(body, strict=True)
    assert set(body) == {"predictions", "n_anomalies", "model_version", "inference_ms"}
    predictions = body["predictions"]
    assert [p["observation_id"] for p in predictions[:2]] == ["a", "b"]
    assert [p["is_anomaly"] for p in predictions] == [False, True, False]
    assert body["n_anomalies"] == 1
    assert body["model_version"] == "tiny-1"
    for prediction in predictions:
        assert_consistent(prediction)


async def test_batch_answers_equal_single_answers(client: httpx.AsyncClient) -> None:
    rows = [[float(i % 5) - 2.0 + 0.1 * j for j in range(8)] for i in range(20)]
    batch = await client.post(
        "/predict/batch", json={"observations": [{"features": r} for r in rows]}
    )
    singles = [(await client.post("/predict", json={"features": r})).json() for r in rows[:5]]
    for single, item in zip(singles, batch.json()["predictions"], strict=False):
        assert single["anomaly_score"] == item["anomaly_score"]
        assert single["detectors"] == item["detectors"]
        assert single["severity"] == item["severity"]
        assert single["contributions"] == item["contributions"]


async def test_top_k_keeps_the_largest_contributions(client: httpx.AsyncClient) -> None:
    full = (await client.post("/predict", json={"features": ANOMALOUS})).json()
    for k in (1, 3, len(FEATURE_NAMES)):
        response = await client.post("/predict", json={"features": ANOMALOUS, "top_k": k})
        assert response.status_code == 200, response.text
        body = response.json()
        assert_contributions(body, k=k)
        assert body["contributions"] == full["contributions"][:k]
        assert body["severity"] == full["severity"]


async def test_batch_top_k_applies_to_every_answer(client: httpx.AsyncClient) -> None:
    observations = [{"features": NORMAL}, {"features": ANOMALOUS}]
    response = await client.post("/predict/batch", json={"observations": observations, "top_k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    PredictBatchResponse.model_validate(body, strict=True)
    for prediction in body["predictions"]:
        assert_contributions(prediction, k=2)


@pytest.mark.parametrize("top_k", [0, -1, 9, 1.5, "3", True, None])
@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
async def test_bad_top_k_is_a_422(client: httpx.AsyncClient, path: str, top_k: object) -> None:
    reading = {"features": ANOMALOUS}
    body = reading if path == "/predict" else {"observations": [reading]}
    response = await client.post(path, json={**body, "top_k": top_k})
    if top_k is None:  # null is "not asked": every feature
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("top_k: ")
    assert error["details"][0]["loc"] == ["top_k"]


async def test_top_k_belongs_to_the_batch_not_its_readings(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/predict/batch", json={"observations": [{"features": NORMAL, "top_k": 2}]}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"] == ["observations", 0, "top_k"]


async def test_severity_is_monotone_in_the_anomaly_score(client: httpx.AsyncClient) -> None:
    # From the normal reading out to far beyond the anomalous one.
    rows = [
        [n + t * (a - n) for n, a in zip(NORMAL, ANOMALOUS, strict=True)]
        for t in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 100.0)
    ]
    response = await client.post(
        "/predict/batch", json={"observations": [{"features": r} for r in rows]}
    )
    predictions = response.json()["predictions"]
    by_score = sorted(predictions, key=lambda p: p["anomaly_score"])
    severities = [p["severity"] for p in by_score]
    assert severities == sorted(severities)
    assert severities[0] == 0.0
    assert severities[-1] > 0.5
    for p in predictions:
        assert (p["severity"] > 0.0) == (p["anomaly_score"] > 0.0)


class CountingCache:
    """Wraps the real cache and records the size of every round trip."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.gets: list[int] = []
        self.sets: list[int] = []

    async def get_many(self, keys):  # type: ignore[no-untyped-def]
        self.gets.append(len(keys))
        return await self.inner.get_many(keys)  # type: ignore[attr-defined]

    async def set_many(self, items):  # type: ignore[no-untyped-def]
        self.sets.append(len(items))
        await self.inner.set_many(items)  # type: ignore[attr-defined]


class CountingScorer:
    """Wraps the real scorer and records the size of every model call."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def explain(self, X):  # type: ignore[no-untyped-def]
        self.calls.append(X.shape[0])
        return self.inner.explain(X)  # type: ignore[attr-defined]


@pytest.mark.parametrize("offload_min_rows", [1, 10_000])
async def test_batch_is_one_vectorised_model_call(
    settings: Settings, offload_min_rows: int
) -> None:
    """Inline or in a worker thread, a batch is scored once; cached rows are not rescored.

    The cache sees one read for all rows and one write for the fresh answers.
    """
    settings = settings.model_copy(update={"offload_min_rows": offload_min_rows})
    async with open_app(settings) as (http, runtime):
        rows = [[0.01 * i + j for j in range(8)] for i in range(300)]
        await http.post("/predict", json={"features": rows[0]})
        predictor = runtime.require_predictor()
        counter = CountingScorer(predictor._scorer)
        predictor._scorer = counter  # type: ignore[assignment]
        cache = CountingCache(predictor._cache)
        predictor._cache = cache  # type: ignore[assignment]
        response = await http.post(
            "/predict/batch", json={"observations": [{"features": r} for r in rows]}
        )
        assert response.status_code == 200, response.text
        assert counter.calls == [299]  # row 0 came from the cache
        assert (cache.gets, cache.sets) == ([300], [299])
        cached = [p["cached"] for p in response.json()["predictions"]]
        assert cached == [True] + [False] * 299


def test_response_models_are_generated_from_the_answer_dataclasses() -> None:
    """One definition of the answer: the documented models carry the dataclasses' fields."""
    import dataclasses

    from anomaly_api.service.answers import Answer, BatchAnswer

    assert list(PredictResponse.model_fields) == [f.name for f in dataclasses.fields(Answer)]
    assert list(PredictBatchResponse.model_fields) == [
        f.name for f in dataclasses.fields(BatchAnswer)
    ]
    cached = PredictResponse.model_fields["cached"]
    assert cached.description == "True when the answer came from the prediction cache."

"""Hot-path measurements: cache cost in-process, JSON parsers, and batches stalling single rows."""

from __future__ import annotations

import asyncio
import http.client
import json
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from bench.inprocess import median_ms
from bench.load import batch_body
from bench.servers import HOST

if TYPE_CHECKING:
    from anomaly_api.service.predictor import Predictor


def predictor_costs(artifacts_dir: Path, *, smoke: bool) -> dict[str, float]:
    """One row through ``Predictor.predict`` (in-process cache): miss, hit, and scoring alone.

    Tells whether the cache lookup costs more than it saves: a miss pays key hashing,
    a lookup and a write on top of the scoring; a hit pays hashing, lookup and decoding.
    """
    from anomaly_api.artifacts import load_artifact
    from anomaly_api.service.cache.memory import InMemoryPredictionCache
    from anomaly_api.service.predictor import Predictor
    from anomaly_api.service.scoring import build_scorer

    artifact = load_artifact(artifacts_dir)
    predictor = Predictor(
        artifact,
        scorer=build_scorer(artifact.model, "fast"),
        cache=InMemoryPredictionCache(max_entries=1_000_000, ttl_s=3600.0),
        cache_prefix="bench:",
        offload_min_rows=64,
    )
    n = 300 if smoke else 5000
    rows = np.random.default_rng(3).normal(size=(n, artifact.model.n_features_in_)).tolist()

    async def per_row_us() -> tuple[float, float]:
        timings = []
        for _ in range(2):  # first pass misses and fills the cache, second pass hits
            started = time.perf_counter()
            for row in rows:
                await predictor.score_rows([row])
            timings.append((time.perf_counter() - started) / n * 1e6)
        return timings[0], timings[1]

    miss_us, hit_us = asyncio.run(per_row_us())
    matrices = [np.array([row]) for row in rows]
    started = time.perf_counter()
    for X in matrices:
        predictor.score(X)
    score_us = (time.perf_counter() - started) / n * 1e6
    return {
        "miss_us": miss_us,
        "hit_us": hit_us,
        "score_only_us": score_us,
        **predictor_batch_costs(predictor, smoke=smoke),
    }


def predictor_batch_costs(predictor: Predictor, *, smoke: bool) -> dict[str, float]:
    """A 1,000-row batch inside ``Predictor``: scoring (with ``Prediction`` objects) vs the
    whole ``predict`` on fresh rows (adds cache keys, lookup, writes and the thread hop)."""
    from anomaly_api.service.cache import prediction_keys

    repeats = 3 if smoke else 30
    base = np.random.default_rng(4).normal(size=(1000, predictor.n_features))
    X = np.ascontiguousarray(base)
    batches = [(base + i * 1e-6).tolist() for i in range(repeats + 1)]

    async def predict_ms() -> float:
        times = []
        for rows in batches:
            started = time.perf_counter()
            await predictor.score_rows(rows)
            times.append((time.perf_counter() - started) * 1e3)
        return statistics.median(times[1:])

    return {
        "batch_score_ms": median_ms(lambda: predictor.score(X), repeats, 10.0),
        "batch_cache_keys_ms": median_ms(
            lambda: prediction_keys("bench:", predictor.version, X), repeats, 5.0
        ),
        "batch_predict_miss_ms": asyncio.run(predict_ms()),
    }


def json_parsers(batch_body: bytes, *, smoke: bool) -> dict[str, float]:
    """Parsing a 1,000-row batch body: the standard library vs orjson."""
    repeats = 10 if smoke else 200
    return {
        "stdlib_json_ms": median_ms(lambda: json.loads(batch_body), repeats, 5.0),
        "orjson_ms": median_ms(lambda: orjson.loads(batch_body), repeats, 5.0),
    }


@contextmanager
def batches_in_background(port: int) -> Iterator[dict[str, Any]]:
    """Keep posting distinct 1,000-row batches, one after another, while the block runs."""
    stop = threading.Event()
    stats: dict[str, Any] = {"batches": 0}

    def loop() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            while not stop.is_set():
                body = batch_body(1_000_000 + stats["batches"])
                conn.request("POST", "/predict/batch", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"batch answered {response.status}")
                stats["batches"] += 1
        finally:
            conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield stats
    finally:
        stop.set()
        thread.join(timeout=30)

"""The per-request cost bench (``bench.request_cost``) and the tail run's helpers
(``bench.tail``) still run and report every layer and step (numbers are not checked)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from bench.batch_cost import measure as measure_batch_cost
from bench.request_cost import measure, one_row_body, raw_post
from bench.tail import app_latency, process_counters


async def test_a_smoke_pass_reports_every_layer_and_step(
    monkeypatch: pytest.MonkeyPatch, tiny_artifacts_dir: Path
) -> None:
    # The suite's logging stays as it is (the bench installs the served process's).
    monkeypatch.setattr("bench.request_cost._production_logging", lambda: None)
    result = await measure(tiny_artifacts_dir, smoke=True)
    assert set(result["predict_1_row_us"]) == {
        "bare FastAPI, through uvicorn",
        "service, through uvicorn",
        "service, ASGI call (no uvicorn)",
        "service, without its middlewares",
    }
    assert len(result["predict_batch_1000_rows_us"]) == 3
    for pieces in (result["pieces_1_row_us"], result["pieces_1000_rows_us"]):
        assert {"validate", "cache_get", "detector_scores", "answers_json"} <= set(pieces)
        assert any(name.startswith("hook ") for name in pieces)
        assert all(value > 0 for value in pieces.values())
    assert {"columnar: body to matrix + checks", "columnar: answers' JSON"} <= set(
        result["pieces_1000_rows_us"]
    )


async def test_the_batch_cost_bench_measures_misses_hits_and_the_kernel(
    monkeypatch: pytest.MonkeyPatch, tiny_artifacts_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setattr("bench.batch_cost._production_logging", lambda: None)
    profile = tmp_path / "miss.prof"
    result = await measure_batch_cost(tiny_artifacts_dir, rounds=1, per_round=2, profile=profile)
    assert set(result) == {"miss", "hit", "kernel", "miss_outside_kernel"}
    assert result["miss"] > 0
    assert result["hit"] > 0
    assert profile.stat().st_size > 0


def test_a_request_is_one_keep_alive_post_with_its_length() -> None:
    body = one_row_body(3)
    raw = raw_post("/predict", body)
    assert raw.endswith(body)
    assert f"Content-Length: {len(body)}".encode() in raw


def test_the_tail_helpers_read_counters_and_histogram_buckets() -> None:
    counters = process_counters(os.getpid())
    assert counters["cpu_s"] > 0
    assert counters["nonvoluntary_ctxt_switches"] >= 0
    before = {0.001: 0.0, 0.025: 0.0, math.inf: 0.0}
    after = {0.001: 60.0, 0.025: 99.0, math.inf: 100.0}
    assert app_latency(before, after) == {"requests": 100.0, "p50_le_ms": 1.0, "p99_le_ms": 25.0}

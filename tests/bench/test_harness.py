"""The suite's helpers that need no server: the in-memory HTTP harness and the merging of
parts' results (no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest
import uvloop
from bench.__main__ import merge
from bench.cost import HttpHarness, raw_post
from bench.data import one_row_body


def test_a_request_is_one_keep_alive_post_with_its_length() -> None:
    body = one_row_body(3)
    raw = raw_post("/predict", body)
    assert raw.endswith(body)
    assert f"Content-Length: {len(body)}".encode() in raw


def test_the_harness_answers_through_uvicorns_protocol() -> None:
    from bench.bare_app import app

    async def send(*bodies: bytes) -> list[bytes]:
        harness = HttpHarness(app, {})  # its protocol binds to the running loop
        return [await harness.request(raw_post("/predict", body)) for body in bodies]

    answers = uvloop.run(send(one_row_body(1), one_row_body(2)))
    assert all(
        a.startswith(b"HTTP/1.1 200 ") and a.endswith(b'"inference_ms":0.0}') for a in answers
    )
    with pytest.raises(RuntimeError, match="422"):
        uvloop.run(send(b'{"features": []}'))


def test_parts_of_one_section_share_its_results(tmp_path: Path) -> None:
    results: dict[str, object] = {}
    merge(results, {"streams": {"ratio_memory": 0.5}, "ratios": {}})
    merge(results, {"streams": {"state_per_stream": {"memory": 1}}})
    assert results == {"streams": {"ratio_memory": 0.5, "state_per_stream": {"memory": 1}},
                       "ratios": {}}  # fmt: skip

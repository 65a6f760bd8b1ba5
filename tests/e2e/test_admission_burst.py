"""A burst against a real server with a tiny in-flight bound: some requests are shed with
503 and Retry-After, none fails otherwise, and every accepted one is answered correctly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from anomaly_api.testing import running_server
from api_testing import samples

N_REQUESTS = 40
ROWS = 100  # above offload_min_rows: scored in a thread, so requests overlap on the loop


def _comparable(answer: Any) -> Any:
    """``answer`` without what differs between a first and a repeated request: timings and
    the cache flag (the second time, the rows come from the cache)."""
    if isinstance(answer, dict):
        return {k: _comparable(v) for k, v in answer.items() if k not in {"inference_ms", "cached"}}
    if isinstance(answer, list):
        return [_comparable(v) for v in answer]
    return answer


def _bodies() -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    return [
        {
            "observations": [
                {"features": row, "observation_id": f"r{i}-{j}"}
                for j, row in enumerate(rng.normal(size=(ROWS, 8)).round(6).tolist())
            ]
        }
        for i in range(N_REQUESTS)
    ]


async def _burst(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        return await asyncio.gather(*(http.post("/predict/batch", json=b) for b in bodies))


def test_a_burst_past_the_bound_is_shed_not_queued(
    tmp_path: Path, tiny_artifacts_dir: Path
) -> None:
    env = {"ANOMALY_ARTIFACTS_DIR": str(tiny_artifacts_dir), "ANOMALY_MAX_IN_FLIGHT": "2"}
    bodies = _bodies()
    with running_server(tmp_path, env) as server:
        responses = asyncio.run(_burst(server.url, bodies))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 503}, statuses
        shed = [r for r in responses if r.status_code == 503]
        assert shed, "no request was shed: the burst never passed 2 in flight"
        assert statuses.count(200) >= 2
        for response in shed:
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == "overloaded"
        metrics = samples(httpx.get(f"{server.url}/metrics", timeout=10).text)
        assert metrics[("anomaly_http_requests_shed_total", ())] == len(shed)
        # Every accepted answer is the one the same body gets alone.
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for body, response in zip(bodies, responses, strict=True):
                if response.status_code == 200:
                    alone = http.post("/predict/batch", json=body)
                    assert alone.status_code == 200
                    assert _comparable(response.json()) == _comparable(alone.json())
                    ids = [p["observation_id"] for p in response.json()["predictions"]]
                    assert ids == [o["observation_id"] for o in body["observations"]]

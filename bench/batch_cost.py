"""CPU per 1,000-row ``POST /predict/batch``, cache misses and hits apart, in process.

``python -m bench.batch_cost ARTIFACTS_DIR [--rounds N] [--per-round N] [--profile FILE]``.
Each request is fed as raw HTTP bytes to uvicorn's protocol over an in-memory transport
(``bench.request_cost``): uvicorn, the middlewares, the route, the cache, the model and
the JSON are counted, the sockets are not. *miss*: every request a new set of rows;
*hit*: the same body again (every row answered by the in-process cache). The two are
interleaved round by round; each figure is the median over rounds of the per-round median,
in ms of the process's CPU time (all threads), which a loaded machine inflates far less
than the wall clock. The kernel's own time (``detector_scores`` of the same rows) is
measured in the same rounds, so "outside the model" is a difference from one run.
``--profile FILE``: a cProfile of the miss requests to FILE (``pstats`` format).
``ARTIFACTS_DIR``: a model from ``bench.models.prepare_artifact`` (made there when empty).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import statistics
from pathlib import Path
from typing import Any

import uvloop

from bench.request_cost import (
    HttpHarness,
    _clock,
    _production_logging,
    _service,
    batch_body,
    raw_post,
)


async def measure(
    artifacts_dir: Path, *, rounds: int, per_round: int, profile: Path | None
) -> dict[str, Any]:
    """Median CPU ms of a miss, a hit and the kernel alone, for 1,000-row batches."""
    import numpy as np
    import orjson

    _production_logging()
    app = _service(artifacts_dir)
    async with app.router.lifespan_context(app) as lifespan_state:
        state = dict(lifespan_state)
        harness = HttpHarness(app, state)
        predictor = state["dataplane"].require_ready()
        hit_request = raw_post("/predict/batch", batch_body(1))
        check = await harness.request(hit_request)
        assert b" 200 " in check.split(b"\r\n", 1)[0], check[:300]
        counter = 100
        times: dict[str, list[float]] = {"miss": [], "hit": [], "kernel": []}
        profiler = cProfile.Profile() if profile else None
        for _ in range(rounds):
            per: dict[str, list[float]] = {name: [] for name in times}
            for _ in range(per_round):
                counter += 1
                body = batch_body(counter)
                request = raw_post("/predict/batch", body)
                X = np.array(
                    [o["features"] for o in orjson.loads(body)["observations"]], dtype=np.float64
                )
                started = _clock()
                if profiler:
                    profiler.enable()
                await harness.request(request)
                if profiler:
                    profiler.disable()
                per["miss"].append(_clock() - started)
                started = _clock()
                await harness.request(hit_request)
                per["hit"].append(_clock() - started)
                started = _clock()
                predictor._scorer.detector_scores(X)
                per["kernel"].append(_clock() - started)
            for name, values in per.items():
                times[name].append(statistics.median(values) * 1e3)
        if profiler and profile:
            profiler.dump_stats(str(profile))
    result = {name: round(statistics.median(values), 2) for name, values in times.items()}
    result["miss_outside_kernel"] = round(result["miss"] - result["kernel"], 2)
    return result


def main() -> None:
    """Parse the arguments, measure, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts_dir", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=15)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    if not any(args.artifacts_dir.glob("*")):
        from bench.models import prepare_artifact

        prepare_artifact(args.artifacts_dir)
    result = uvloop.run(
        measure(
            args.artifacts_dir, rounds=args.rounds, per_round=args.per_round, profile=args.profile
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

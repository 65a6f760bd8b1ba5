"""Instructions per request, under callgrind: a load-proof count for old-vs-new comparisons.

Wall-clock numbers on a shared 2-core machine move by tens of percent from one minute to
the next; the instructions a request executes do not. Run under valgrind with
instrumentation off until the loop (``callgrind_control`` switches it on and off)::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python -m bench.request_instructions ARTIFACTS_DIR /predict 300 [--bare]

and divide valgrind's ``Collected`` count by the number of requests. Each request is fed as
raw HTTP bytes to uvicorn's protocol over an in-memory transport (``bench.request_cost``),
so uvicorn, the middlewares, the route, the model and the JSON are counted; the kernel's
socket work is not. ``--bare``: the bare FastAPI endpoint instead of the service. About a
minute for 300 one-row requests (mostly start-up, uninstrumented).
"""

from __future__ import annotations

import argparse
import os
import subprocess
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import uvloop

from bench.request_cost import (
    HttpHarness,
    _production_logging,
    _service,
    batch_body,
    one_row_body,
    raw_post,
)


def _instrument(on: bool) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
        check=True,
        capture_output=True,
    )


async def run(artifacts_dir: Path, path: str, count: int, *, bare: bool) -> None:
    """Warm up, then send ``count`` distinct requests with instrumentation on."""
    _production_logging()
    async with AsyncExitStack() as stack:
        app: Any
        state: dict[str, Any] = {}
        if bare:
            from bench.bare_app import app
        else:
            app = _service(artifacts_dir)
            state = dict(await stack.enter_async_context(app.router.lifespan_context(app)))
        harness = HttpHarness(app, state)
        make = one_row_body if path == "/predict" else batch_body
        bodies = [raw_post(path, make(10_000 + i)) for i in range(count)]
        for i in range(50):
            await harness.request(raw_post(path, make(i)))
        _instrument(True)
        for body in bodies:
            await harness.request(body)
        _instrument(False)


def main() -> None:
    """Parse the arguments and run (see the module docstring for the valgrind command)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts_dir", type=Path, help="a model, e.g. from bench.__main__")
    parser.add_argument("path", choices=["/predict", "/predict/batch"])
    parser.add_argument("count", type=int)
    parser.add_argument("--bare", action="store_true")
    args = parser.parse_args()
    uvloop.run(run(args.artifacts_dir, args.path, args.count, bare=args.bare))


if __name__ == "__main__":
    main()

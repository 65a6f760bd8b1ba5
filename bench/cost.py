"""Section ``cost``: CPU per request and per 1,000-row batch in this one process, by layer,
and instructions per request under callgrind (protocol: docs/performance.md)."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import uvloop

from bench.data import ROOT, batch_body, one_row_body
from bench.timing import Variant, async_rounds_us

if TYPE_CHECKING:
    from bench.__main__ import Context


class _Transport:
    """Just enough of ``asyncio.Transport`` for uvicorn: ``done`` once the response is whole."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.expected: int | None = None
        self.done: asyncio.Future[bytes] | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        whole = b"".join(self.chunks)
        if self.expected is None:
            head, sep, _ = whole.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if sep and length:
                self.expected = len(head) + 4 + int(length[1])
        if self.expected is not None and len(whole) >= self.expected and self.done is not None:
            self.done.set_result(whole)

    def __getattr__(self, name: str) -> Any:  # is_closing, close, pause_reading...: no-ops
        return lambda *args: None


class HttpHarness:
    """One keep-alive connection to ``app`` through uvicorn's httptools protocol."""

    def __init__(self, app: Any, state: dict[str, Any]) -> None:
        from uvicorn.config import Config
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        from uvicorn.server import ServerState

        config = Config(app, http="httptools", lifespan="off", log_config=None, access_log=False)
        config.load()
        self.transport = _Transport()
        self.protocol = HttpToolsProtocol(config, ServerState(), state)
        self.protocol.connection_made(self.transport)  # type: ignore[arg-type]

    async def request(self, raw: bytes) -> bytes:
        """Send one request's bytes and wait for the whole response (a 200)."""
        self.transport.chunks.clear()
        self.transport.expected = None
        self.transport.done = asyncio.get_running_loop().create_future()
        self.protocol.data_received(raw)
        answer = await self.transport.done
        if not answer.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(f"answered {answer[:300]!r}")
        return answer


def raw_post(path: str, body: bytes) -> bytes:
    """An HTTP/1.1 keep-alive POST with a JSON body."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def asgi_post(app: Any, state: dict[str, Any], path: str, body: bytes) -> bytes:
    """One ASGI ``http`` call with ``body`` (no uvicorn); the response body."""
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]  # fmt: skip
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": state.copy(),
    }  # fmt: skip
    sent, out = False, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            out.append(message.get("body", b""))

    await app(scope, receive, send)
    return b"".join(out)


async def _served(stack: AsyncExitStack, artifacts: Path) -> tuple[Any, dict[str, Any]]:
    """The service's app (``fast``) and its lifespan state, logging JSON at INFO to memory."""
    from anomaly_api.api.app import create_app
    from anomaly_api.config import Settings
    from anomaly_api.logging_config import configure_logging

    configure_logging("INFO", "json")
    for name in ("anomaly_api", "uvicorn"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(io.StringIO())
    app = create_app(Settings(artifacts_dir=artifacts, inference_backend="fast"))
    lifespan: Any = app.router.lifespan_context(app)
    return app, dict(await stack.enter_async_context(lifespan))


def _http(harness: HttpHarness, path: str, make: Callable[[int], bytes]) -> Variant:
    return lambda i: harness.request(raw_post(path, make(i)))


def _asgi(app: Any, state: dict[str, Any], path: str, make: Callable[[int], bytes]) -> Variant:
    return lambda i: asgi_post(app, state, path, make(i))


async def _layers(ctx: Context) -> dict[str, Any]:
    from anomaly_api.artifacts import load_artifact
    from anomaly_api.detection.fast import compile_scorer
    from bench.bare_app import app as bare

    scorer = compile_scorer(load_artifact(ctx.artifacts).model)
    async with AsyncExitStack() as stack:
        from anomaly_api.api.fast_path import FastPathMiddleware

        app, state = await _served(stack, ctx.artifacts)
        kept = app.user_middleware
        stacks = []  # the fast path alone (FastAPI's exception layers stay); all but it
        for alone in (True, False):
            app.user_middleware = [m for m in kept if (m.cls is FastPathMiddleware) is alone]
            stacks.append(app.build_middleware_stack())
        app.user_middleware = kept
        inner, routed = stacks
        served = HttpHarness(app, state)
        hit = raw_post("/predict/batch", batch_body(1))
        await served.request(hit)  # stored: every later send of it is a hit

        def kernel(i: int) -> Awaitable[object]:
            rows = [o["features"] for o in orjson.loads(batch_body(i))["observations"]]
            scorer.detector_scores(np.array(rows, dtype=np.float64))
            return asyncio.sleep(0)

        one = {
            "bare FastAPI, through uvicorn": _http(HttpHarness(bare, {}), "/predict", one_row_body),
            "service, through uvicorn": _http(served, "/predict", one_row_body),
            "service, FastAPI routing (no fast path)": _http(
                HttpHarness(routed, state), "/predict", one_row_body
            ),
            "service, ASGI call (no uvicorn)": _asgi(app, state, "/predict", one_row_body),
            "service, without its middlewares": _asgi(inner, state, "/predict", one_row_body),
        }
        many = {name: (_http(served, "/predict/batch", batch_body) if "uvicorn" in name
                       else _asgi(app if "ASGI" in name else inner, state, "/predict/batch",
                                  batch_body))
                for name in list(one)[1:] if "no fast path" not in name}  # fmt: skip
        many["service, cache hits, through uvicorn"] = lambda _i: served.request(hit)
        many["the kernel alone on the same rows"] = kernel
        batch = await async_rounds_us(
            many, rounds=ctx.size(2, 7), per_round=ctx.size(2, 15), start=10_000
        )
        batch["outside the kernel, through uvicorn"] = round(
            batch["service, through uvicorn"] - batch["the kernel alone on the same rows"], 2
        )
        return {
            "predict_1_row_us": await async_rounds_us(
                one, rounds=ctx.size(2, 15), per_round=ctx.size(20, 300)),
            "predict_batch_1000_rows_us": batch,
        }  # fmt: skip


def request(ctx: Context) -> dict[str, Any]:
    """One ``/predict`` and one 1,000-row ``/predict/batch`` by layer (see docs/performance.md)."""
    return {"cost": {"request": uvloop.run(_layers(ctx))}}


def _instrument(callgrind: bool, on: bool) -> None:
    """Turn this process's callgrind instrumentation on or off (nothing without it)."""
    if callgrind:
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
                       check=True, capture_output=True)  # fmt: skip


def _counted(ctx: Context, child: list[str], count: int, callgrind: bool) -> float | None:
    """Run the child (``python -c`` arguments) under callgrind when ``callgrind``;
    instructions it collected per request (None without callgrind)."""
    command = [sys.executable, "-c", *child]
    if callgrind:
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={ctx.workdir / 'callgrind.out'}", *command]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{child[1:]} exited {done.returncode}: {done.stderr[-2000:]}")
    collected = re.search(r"Collected : (\d+)", done.stderr)
    return int(collected[1]) / count if collected else None


async def _count(artifacts: Path, path: str, count: int, bare: bool, callgrind: bool) -> None:
    from bench.bare_app import app as bare_app

    async with AsyncExitStack() as stack:
        app, state = (bare_app, {}) if bare else await _served(stack, artifacts)
        harness = HttpHarness(app, state)
        make = one_row_body if path == "/predict" else batch_body
        bodies = [raw_post(path, make(10_000 + i)) for i in range(count)]
        for i in range(50):
            await harness.request(raw_post(path, make(i)))
        _instrument(callgrind, True)
        for body in bodies:
            await harness.request(body)
        _instrument(callgrind, False)


def count_requests(*args: str) -> None:
    """The child: ``ARTIFACTS PATH COUNT BARE CALLGRIND`` (see ``instructions``)."""
    artifacts, path, count, bare, callgrind = args
    uvloop.run(_count(Path(artifacts), path, int(count), bare == "1", callgrind == "1"))


def instructions(ctx: Context) -> dict[str, Any]:
    """Instructions per request under callgrind (none without valgrind or in a smoke run)."""
    callgrind = shutil.which("valgrind") is not None and not ctx.smoke
    code = "import sys; from bench.cost import count_requests; count_requests(*sys.argv[1:])"
    runs = (("bare /predict", "/predict", 300, "1"), ("/predict", "/predict", 300, "0"),
            ("/predict/batch", "/predict/batch", 5, "0"))  # fmt: skip
    out: dict[str, Any] = {}
    for name, path, default, bare in runs[1:2] if ctx.smoke else runs:
        count = ctx.option("requests", default)
        child = [code, str(ctx.artifacts), path, str(count), bare, "1" if callgrind else "0"]
        out[name] = _counted(ctx, child, count, callgrind)
    return {"cost": {"instructions_per_request": out}}


STREAMS = 16
"""Streams a stream variant spreads its readings over (one reading per request)."""
T0 = 1_800_000_000
Reading = Callable[[int, int], bytes]
"""A stream's ``n``-th reading's body (300 s after the one before, the model's step), for
the ``i``-th request of a round."""


def _normal(series: Any) -> Reading:
    """Rows of the synthetic series (mostly normal; its faults flag a few)."""
    return lambda n, i: orjson.dumps(
        {"timestamps": [T0 + 300 * n], "readings": [series.data.X[i % len(series.data.X)].tolist()]}
    )


def _stuck(n: int, _i: int) -> bytes:
    """The reading ``streams.http``'s wrk script sends (``bench.load.STREAM_LUA``): two
    channels never move, so past the window every reading is an anomaly of one open event."""
    values = [math.sin(n / 7), math.cos(n / 5), math.sin(n / 3) * 0.5, 0.1, math.cos(n / 11),
              math.sin(n / 13), 0.2 + n * 1e-6, -0.1]  # fmt: skip
    return orjson.dumps({"timestamps": [T0 + 300 * n], "readings": [[round(v, 6) for v in values]]})


async def _stream_variants(
    app: Any, state: dict[str, Any], label: str, normal: Reading
) -> dict[str, Variant]:
    """One reading per request to ``STREAMS`` streams each, through uvicorn: normal readings
    with and without the fast path, the wrk script's with it; every stream past warm-up
    first (80 readings)."""
    from anomaly_api.api.fast_path import FastPathMiddleware

    kept = app.user_middleware
    app.user_middleware = [m for m in kept if m.cls is not FastPathMiddleware]
    routed = app.build_middleware_stack()
    app.user_middleware = kept
    variants: dict[str, Variant] = {}
    cases = [("fast path", app, normal), ("FastAPI routing", routed, normal),
             ("fast path, the wrk script's readings", app, _stuck)]  # fmt: skip
    for number, (name, served, reading) in enumerate(cases):
        harness = HttpHarness(served, state)
        sent = itertools.count()  # this variant's requests: each stream's readings in step

        def post(
            i: int,
            harness: HttpHarness = harness,
            key: str = f"{label.partition(' ')[0]}-{number}",
            sent: Iterator[int] = sent,
            reading: Reading = reading,
        ) -> Awaitable[bytes]:
            n = next(sent)
            path = f"/streams/{key}-{n % STREAMS}/readings"
            return harness.request(raw_post(path, reading(n // STREAMS, i)))

        for i in range(80 * STREAMS):
            await post(i)
        variants[f"one reading, {label}, {name}"] = post
    return variants


async def _stream_cost(ctx: Context) -> dict[str, Any]:
    from anomaly_api.api.app import create_app
    from anomaly_api.config import Settings
    from anomaly_api.data.timeseries import synthetic_timeseries
    from bench.servers import redis_server

    series = synthetic_timeseries(seed=1, n_rows=4000)
    window = series.data.X[:60].astype(np.float64)
    stamps = np.arange(60, dtype=np.float64) * 300.0

    async with AsyncExitStack() as stack:
        app, state = await _served(stack, ctx.time_aware)
        model = state["runtime"].predictor.time_aware

        def score_window(_i: int) -> Awaitable[object]:
            model.score_window(stamps, window, last=1)
            return asyncio.sleep(0)

        variants = {"score_window, newest of 60 readings": score_window}
        variants |= await _stream_variants(app, state, "in-process store", _normal(series))
        url = stack.enter_context(redis_server())
        settings = Settings(artifacts_dir=ctx.time_aware, inference_backend="fast", redis_url=url)
        app = create_app(settings)
        lifespan: Any = app.router.lifespan_context(app)
        state = dict(await stack.enter_async_context(lifespan))
        variants |= await _stream_variants(app, state, "Redis store", _normal(series))
        measured = await async_rounds_us(
            variants, rounds=ctx.size(2, 7), per_round=ctx.size(10, 320), start=100 * STREAMS
        )
        profiled = ctx.options.get("profile")
        if profiled is not None:  # after the rounds: its readings come later in time
            await _profile(variants[profiled], ctx.option("requests", 2000))
        return measured


async def _profile(variant: Variant, count: int) -> None:
    """cProfile of ``count`` more calls of ``variant``; its top functions to stderr."""
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    for i in range(count):
        await variant(10_000_000 + i)
    profile.disable()
    stats = pstats.Stats(profile, stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(60)
    stats.sort_stats("tottime").print_stats(40)


def stream(ctx: Context) -> dict[str, Any]:
    """µs of CPU per stream reading (``POST /streams/{id}/readings``, the default time-aware
    model, one reading per request, streams past warm-up), in-process store and a
    throwaway Redis: readings of the synthetic series with the fast path and with FastAPI's
    routing, and the wrk script's readings (every one an anomaly); ``score_window`` alone
    in the same rounds. ``--set profile=<variant name>`` prints cProfile's top functions
    of ``--set requests=N`` more of that variant first."""
    return {"cost": {"stream_reading_us": uvloop.run(_stream_cost(ctx))}}


async def _count_stream(
    artifacts: Path, redis_url: str, kind: str, count: int, routed: bool, callgrind: bool
) -> None:
    from anomaly_api.api.app import create_app
    from anomaly_api.config import Settings
    from anomaly_api.data.timeseries import synthetic_timeseries

    reading = _stuck if kind == "stuck" else _normal(synthetic_timeseries(seed=1, n_rows=4000))
    async with AsyncExitStack() as stack:
        app, state = await _served(stack, artifacts)  # logging as served; its store in memory
        if redis_url != "-":
            app = create_app(Settings(artifacts_dir=artifacts, inference_backend="fast",
                                      redis_url=redis_url, redis_timeout_s=5.0))  # fmt: skip
            lifespan: Any = app.router.lifespan_context(app)
            state = dict(await stack.enter_async_context(lifespan))
        if routed:
            from anomaly_api.api.fast_path import FastPathMiddleware

            app.user_middleware = [
                m for m in app.user_middleware if m.cls is not FastPathMiddleware
            ]
            app = app.build_middleware_stack()
        harness = HttpHarness(app, state)
        prefix = f"c-{kind}-{int(routed)}"  # the child's own streams (one Redis for all)
        for stream in range(STREAMS):  # 80 readings each, 16 a request (the most it takes)
            for start in range(0, 80, 16):
                bodies = [orjson.loads(reading(n, n)) for n in range(start, start + 16)]
                merged = {key: [b[key][0] for b in bodies] for key in ("timestamps", "readings")}
                path = f"/streams/{prefix}-{stream}/readings"
                await harness.request(raw_post(path, orjson.dumps(merged)))
        paths = [f"/streams/{prefix}-{n % STREAMS}/readings" for n in range(count)]
        bodies = [raw_post(path, reading(80 + n // STREAMS, n)) for n, path in enumerate(paths)]
        _instrument(callgrind, True)
        for body in bodies:
            await harness.request(body)
        _instrument(callgrind, False)


def count_stream_requests(*args: str) -> None:
    """The child: ``ARTIFACTS REDIS_URL|- KIND COUNT ROUTED CALLGRIND`` (see
    ``stream_instructions``)."""
    artifacts, url, kind, count, routed, callgrind = args
    uvloop.run(_count_stream(Path(artifacts), url, kind, int(count), routed == "1",
                             callgrind == "1"))  # fmt: skip


def stream_instructions(ctx: Context) -> dict[str, Any]:
    """Instructions per stream reading (no load changes them), as ``instructions`` counts
    them for ``/predict``: a child under callgrind, instrumented only while it sends
    ``--set requests=N`` readings (200) to 16 streams past warm-up, one a request, through
    uvicorn's protocol; readings of the synthetic series (fast path and FastAPI routing) and
    the wrk script's, in-process store and a throwaway Redis (whose own work is not
    counted; its calls may take 5 s, as slow as the child runs). Without valgrind (or in a
    smoke run) nothing is counted."""
    from bench.servers import redis_server

    callgrind = shutil.which("valgrind") is not None and not ctx.smoke
    count = ctx.option("requests", 200)
    code = "import sys; from bench.cost import count_stream_requests as c; c(*sys.argv[1:])"
    runs = [("in-process store", False, "normal", False),
            ("in-process store", False, "normal", True),
            ("in-process store", False, "stuck", False),
            ("Redis store", True, "normal", False),
            ("Redis store", True, "stuck", False)]  # fmt: skip
    out: dict[str, Any] = {}
    with redis_server() as url:
        for store, redis, kind, routed in runs[:1] if ctx.smoke else runs:
            child = [code, str(ctx.time_aware), url if redis else "-", kind, str(count),
                     "1" if routed else "0", "1" if callgrind else "0"]  # fmt: skip
            counted = _counted(ctx, child, count, callgrind)
            readings = "the wrk script's readings" if kind == "stuck" else "synthetic readings"
            path = "FastAPI routing" if routed else "fast path"
            out[f"{store}, {readings}, {path}"] = counted
    return {"cost": {"stream_instructions_per_reading": out}}


PARTS = {
    "request": request,
    "instructions": instructions,
    "stream": stream,
    "stream_instructions": stream_instructions,
}

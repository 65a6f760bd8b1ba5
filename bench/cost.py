"""Section ``cost``: CPU per request and per 1,000-row batch in this one process, by layer,
and instructions per request under callgrind (protocol: docs/performance.md)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
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


PARTS = {"request": request, "instructions": instructions}

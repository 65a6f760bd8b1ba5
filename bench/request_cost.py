"""Where one ``/predict`` (1 row) and one ``/predict/batch`` (1,000 rows) spend their time.

``python -m bench.request_cost [--smoke] [--out FILE]``. Everything runs in this one
process on one event loop (uvloop), without sockets, so a loaded machine disturbs it far
less than wrk would:

* **whole request**: the raw HTTP request bytes fed to uvicorn's own ``HttpToolsProtocol``
  over an in-memory transport, until the last response byte is written: uvicorn's parser,
  the ASGI app, every middleware, the route, the model and the JSON answer. The bare
  FastAPI endpoint (``bench/bare_app.py``) is measured the same way, as the ceiling.
* **layers**: the same requests sent as ASGI calls straight into the app (without
  uvicorn), and into the app's router alone (without the middlewares); the differences
  are uvicorn's and the middlewares' share.
* **pieces**: each step of the request path called on its own (body parse, validation,
  matrix, cache keys, cache look-up and write, detector scores, ``combine``, the
  ``Prediction`` objects, the answers, each ``DataPlane`` hook, the JSON encoding, the
  access-log line).

Every request carries a different reading (cache misses, as in the wrk runs). The
variants are interleaved round by round and each figure is the median over rounds of
the per-round median, in µs of the process's CPU time (all its threads, the thread hop's
worker included), which a loaded machine inflates far less than the wall clock. Writes
``bench/results/request-cost.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvloop

ROOT = Path(__file__).resolve().parents[1]
_clock = time.process_time
"""CPU time of the whole process (every thread), not wall time: on a shared machine the
wall clock also counts the time the process waited for a core."""
OUT = ROOT / "bench" / "results" / "request-cost.json"
N_FEATURES = 8


class _Transport:
    """Just enough of ``asyncio.Transport`` for uvicorn's protocol; collects the answer and
    resolves ``done`` once the whole response (``Content-Length``) has been written."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.expected: int | None = None
        self.done: asyncio.Future[bytes] | None = None
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.expected is None:
            head, sep, _ = b"".join(self.chunks).partition(b"\r\n\r\n")
            if not sep:
                return
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    self.expected = len(head) + 4 + int(line.split(b":", 1)[1])
        if self.expected is not None and self.size >= self.expected and self.done is not None:
            self.done.set_result(b"".join(self.chunks))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        pass


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
        """Send one request's bytes and wait for the whole response."""
        transport = self.transport
        transport.chunks.clear()
        transport.size = 0
        transport.expected = None
        transport.done = asyncio.get_running_loop().create_future()
        self.protocol.data_received(raw)
        return await transport.done


def raw_post(path: str, body: bytes) -> bytes:
    """An HTTP/1.1 keep-alive POST with a JSON body."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def asgi_post(app: Any, state: dict[str, Any], path: str, body: bytes) -> bytes:
    """One ASGI ``http`` call with ``body``; the response bytes."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": state.copy(),
    }
    sent = False
    out: list[bytes] = []

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


def one_row_body(i: int) -> bytes:
    """The wrk script's body: two features nudged by a counter (every request a miss)."""
    a, b = 0.5 + i * 1e-9, 0.9 - i * 1e-9
    return (
        f'{{"features":[{a:.12f},1.2,-0.3,0.8,1.5,0.2,-0.1,{b:.12f}],"observation_id":"bench"}}'
    ).encode()


def batch_body(i: int, rows: int = 1000) -> bytes:
    """A batch of distinct rows (no row repeats across ``i``)."""
    base = np.random.default_rng(1).normal(size=(rows, N_FEATURES))
    return orjson.dumps(
        {"observations": [{"features": row} for row in np.round(base + i * 1e-6, 6).tolist()]}
    )


Variant = Callable[[int], Awaitable[object]]


async def interleaved(
    variants: dict[str, Variant], *, rounds: int, per_round: int, start: int = 0
) -> dict[str, float]:
    """Median over ``rounds`` of each variant's per-round median time, in µs."""
    per_variant: dict[str, list[float]] = {name: [] for name in variants}
    counter = start
    for _ in range(rounds):
        for name, run in variants.items():
            times = []
            for _ in range(per_round):
                counter += 1
                started = _clock()
                await run(counter)
                times.append(_clock() - started)
            per_variant[name].append(statistics.median(times) * 1e6)
    return {name: round(statistics.median(values), 2) for name, values in per_variant.items()}


def timed_us(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` in µs."""
    fn()
    times = []
    for _ in range(repeats):
        started = _clock()
        fn()
        times.append(_clock() - started)
    return round(statistics.median(times) * 1e6, 2)


def _service(artifacts_dir: Path) -> Any:
    from anomaly_api.api.app import create_app
    from anomaly_api.config import Settings

    return create_app(Settings(artifacts_dir=artifacts_dir, inference_backend="fast"))


def _production_logging() -> io.StringIO:
    """The served process's logging (JSON lines at INFO), written to memory."""
    from anomaly_api.logging_config import configure_logging

    configure_logging("INFO", "json")
    sink = io.StringIO()
    for name in ("anomaly_api", "uvicorn"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sink)
    return sink


async def pieces(state: dict[str, Any], *, rows: int, repeats: int) -> dict[str, float]:
    """Each step of the request path on its own, in µs, for a body of ``rows`` rows."""
    from anomaly_api.api.body import validate_body
    from anomaly_api.api.request_context import RequestContext, _log_access
    from anomaly_api.api.schemas import PredictBatchRequest, PredictRequest
    from anomaly_api.service.cache import prediction_keys
    from anomaly_api.service.dataplane import DataPlane, ScoredBatch

    dataplane: DataPlane = state["dataplane"]
    predictor = dataplane.require_ready()
    body = one_row_body(7) if rows == 1 else batch_body(7, rows)
    model = PredictRequest if rows == 1 else PredictBatchRequest
    data = orjson.loads(body)
    parsed: Any = validate_body(model, data)
    feature_rows = [parsed.features] if rows == 1 else [o.features for o in parsed.observations]
    ids = [parsed.observation_id] if rows == 1 else [o.observation_id for o in parsed.observations]
    X = predictor.to_matrix(feature_rows)
    keys = prediction_keys(predictor._cache_prefix, predictor.version, X)
    cache = predictor._cache
    scorer = predictor._scorer
    scores = scorer.detector_scores(X)
    predictions = predictor.score(X)
    blobs = dict(zip(keys, predictor._codec.encode(predictions), strict=True))
    batch = await dataplane.predict(feature_rows, ids)
    event = ScoredBatch(predictor.version, X, predictions, batch.n_anomalies, 0.0001)
    loop = asyncio.get_running_loop()

    def run(coro_fn: Callable[[], Awaitable[object]]) -> Callable[[], object]:
        def call() -> object:
            coro = coro_fn()
            try:
                coro.send(None)  # type: ignore[attr-defined]
            except StopIteration as stop:
                return stop.value
            raise RuntimeError("the coroutine awaited")

        return call

    out: dict[str, float] = {
        "orjson_loads": timed_us(lambda: orjson.loads(body), repeats),
        "validate": timed_us(lambda: validate_body(model, data), repeats),
        "to_matrix": timed_us(lambda: predictor.to_matrix(feature_rows), repeats),
        "cache_keys": timed_us(
            lambda: prediction_keys(predictor._cache_prefix, predictor.version, X), repeats
        ),
        "cache_get": timed_us(run(lambda: cache.get_many(keys)), repeats),
        "cache_set": timed_us(run(lambda: cache.set_many(blobs)), repeats),
        "detector_scores": timed_us(lambda: scorer.detector_scores(X), repeats),
        "combine_with_contributions": timed_us(lambda: predictor.model.combine(scores, X), repeats),
        "combine_without_contributions": timed_us(lambda: predictor.model.combine(scores), repeats),
        "score_total": timed_us(lambda: predictor.score(X), repeats),
        "answers_json": timed_us(batch.answer_json if rows == 1 else batch.to_json, repeats),
        "access_log_line": timed_us(
            lambda: _log_access(
                {"method": "POST", "path": "/predict"},
                "/predict",
                200,
                0.001,
                RequestContext("x" * 32, rows, 0, predictor.version),
            ),
            repeats,
        ),
    }
    if rows > 1:  # the batch route's own path (``DataPlane.predict``)
        out.update(_columnar_pieces(dataplane, predictor, data, X, repeats))
    for hook in dataplane.hooks:
        name = getattr(hook, "__qualname__", type(hook).__name__)
        out[f"hook {name}"] = timed_us(lambda h=hook: h(event), repeats)  # type: ignore[misc]
    metrics = state["metrics"]
    out["http_metrics"] = timed_us(
        lambda: metrics.observe_request("POST", "/predict", 200, 0.001), repeats
    )

    async def hop() -> object:
        return await _to_thread(lambda: None)

    out["thread_hop_empty"] = round(
        statistics.median([await _timed_async(hop) for _ in range(min(repeats, 300))]), 2
    )
    del loop
    return out


def _columnar_pieces(
    dataplane: Any, predictor: Any, data: Any, X: Any, repeats: int
) -> dict[str, float]:
    """The batch route's steps: the body into one matrix, the predictions as columns, the
    cache's bytes of them, and the answers' JSON written from the columns."""
    from anomaly_api.api.body import _columnar_batch
    from anomaly_api.config import Settings
    from anomaly_api.service.answers import ColumnarBatchAnswer
    from anomaly_api.service.dataplane import _filled_ids

    settings = Settings()
    columns = predictor.score(X)
    blobs = predictor._codec.encode(columns)
    answer = ColumnarBatchAnswer(
        columns, _filled_ids(None, len(columns)), predictor.feature_names,
        predictor.detector_names, predictor.thresholds, predictor.version, 0.1, None,
    )  # fmt: skip
    return {
        "columnar: body to matrix + checks": timed_us(
            lambda: _columnar_batch(data, settings), repeats
        ),
        "columnar: score": timed_us(lambda: predictor.score(X), repeats),
        "columnar: cache encode": timed_us(lambda: predictor._codec.encode(columns), repeats),
        "columnar: cache decode": timed_us(lambda: predictor._codec.decode(blobs), repeats),
        "columnar: answers' JSON": timed_us(answer.to_json, repeats),
    }


async def _to_thread(fn: Callable[[], object]) -> object:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(fn)


async def _timed_async(fn: Callable[[], Awaitable[object]]) -> float:
    started = _clock()
    await fn()
    return (_clock() - started) * 1e6


async def measure(artifacts_dir: Path, *, smoke: bool) -> dict[str, Any]:
    """The layers and the pieces for one row and for 1,000 rows."""
    from bench.bare_app import app as bare

    _production_logging()
    service = _service(artifacts_dir)
    result: dict[str, Any] = {}
    async with service.router.lifespan_context(service) as lifespan_state:
        state = dict(lifespan_state)
        bare_state: dict[str, Any] = {}
        service_http = HttpHarness(service, state)
        bare_http = HttpHarness(bare, bare_state)
        # The same app with none of its own middlewares (FastAPI's exception and
        # exit-stack layers stay: every FastAPI route needs them).
        kept = service.user_middleware
        service.user_middleware = []
        router = service.build_middleware_stack()
        service.user_middleware = kept

        def http(harness: HttpHarness, path: str, make: Callable[[int], bytes]) -> Variant:
            async def run(i: int) -> object:
                return await harness.request(raw_post(path, make(i)))

            return run

        def asgi(app: Any, st: dict[str, Any], path: str, make: Callable[[int], bytes]) -> Variant:
            async def run(i: int) -> object:
                return await asgi_post(app, st, path, make(i))

            return run

        check = await service_http.request(raw_post("/predict", one_row_body(0)))
        assert b" 200 " in check.split(b"\r\n", 1)[0], check[:300]
        rounds, per_round = (3, 30) if smoke else (15, 300)
        result["predict_1_row_us"] = await interleaved(
            {
                "bare FastAPI, through uvicorn": http(bare_http, "/predict", one_row_body),
                "service, through uvicorn": http(service_http, "/predict", one_row_body),
                "service, ASGI call (no uvicorn)": asgi(service, state, "/predict", one_row_body),
                "service, without its middlewares": asgi(router, state, "/predict", one_row_body),
            },
            rounds=rounds,
            per_round=per_round,
        )
        rounds, per_round = (2, 3) if smoke else (7, 15)
        result["predict_batch_1000_rows_us"] = await interleaved(
            {
                "service, through uvicorn": http(service_http, "/predict/batch", batch_body),
                "service, ASGI call (no uvicorn)": asgi(
                    service, state, "/predict/batch", batch_body
                ),
                "service, without its middlewares": asgi(
                    router, state, "/predict/batch", batch_body
                ),
            },
            rounds=rounds,
            per_round=per_round,
            start=10_000,
        )
        result["pieces_1_row_us"] = await pieces(state, rows=1, repeats=200 if smoke else 3000)
        result["pieces_1000_rows_us"] = await pieces(state, rows=1000, repeats=5 if smoke else 60)
    return result


def main() -> None:
    """Fit the bench's default-size model, measure, write the JSON and print it."""
    from bench.__main__ import prepare_artifact

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a quick pass, numbers meaningless")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-request-cost-") as tmp:
        artifacts = Path(tmp)
        prepare_artifact(artifacts)
        result = uvloop.run(measure(artifacts, smoke=args.smoke))
    import os

    result["load_average_after"] = os.getloadavg()
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

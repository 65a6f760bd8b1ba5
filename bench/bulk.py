"""Section ``bulk``: bulk scoring of a Parquet file locally, on Dask and through the CLI,
and the client's ``predict_many`` against the server's batch throughput."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from anomaly_api.testing import clean_env
from bench.data import BATCH_ROWS, batch_body
from bench.servers import service_env, service_server

if TYPE_CHECKING:
    from bench.__main__ import Context

CONCURRENCY = 4


def write_readings(path: Path, rows: int) -> None:
    """``rows`` synthetic readings (the generator's 8 channels) plus an id column."""
    from anomaly_api.data.loading import write_table
    from anomaly_api.data.synthetic import SENSOR_CHANNELS, generate_sensor_data

    frame = generate_sensor_data(max(rows, 10), seed=0).iloc[:rows][list(SENSOR_CHANNELS)]
    frame.insert(0, "reading_id", np.arange(rows, dtype=np.int64))
    write_table(frame, path)


def cli_run(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``anomaly-api`` in a child; wall time, summary line and peak RSS (MB)."""
    cli = str(Path(sys.executable).with_name("anomaly-api"))
    started = time.perf_counter()
    process = subprocess.Popen([cli, *args], env=env, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    assert process.stdout is not None
    out = process.stdout.read()
    process.stdout.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"anomaly-api {' '.join(args)} failed ({process.returncode})")
    return {"wall_s": wall, "summary": out.strip(), "peak_rss_mb": usage.ru_maxrss / 1024}


def timed_run(engine: Any, data: Path, out: Path, chunk_rows: int) -> float:
    """Seconds of one ``runner.run`` (read, validate, score, write) with ``engine``."""
    from anomaly_api.bulk import runner

    started = time.perf_counter()
    runner.run(data, out, engine, chunk_rows=chunk_rows)
    return time.perf_counter() - started


def client_vs_server(artifacts: Path, rows: int, rounds: int = 5) -> dict[str, Any]:
    """predict_many against pre-encoded batch posts, interleaved in ``rounds``; client CPU."""
    from anomaly_api.client import AnomalyClient

    rng = np.random.default_rng(3)
    rounds = max(1, min(rounds, rows // BATCH_ROWS))
    per_round = max(BATCH_ROWS, rows // rounds)
    headers = {"Content-Type": "application/json"}
    raw_s = client_s = client_cpu_s = 0.0
    with service_server("service", service_env(artifacts, "fast")) as server:
        url = f"http://127.0.0.1:{server.port}"
        with (
            httpx.Client(base_url=url, timeout=60) as http,
            AnomalyClient(url, max_batch_rows=BATCH_ROWS, max_concurrency=CONCURRENCY) as client,
            ThreadPoolExecutor(CONCURRENCY) as pool,
        ):

            def post(body: bytes) -> None:
                assert http.post("/predict/batch", content=body, headers=headers).status_code == 200

            client.predict_many(rng.normal(size=(2 * BATCH_ROWS, 8)).tolist())  # warm-up
            for r in range(rounds):
                batches = per_round // BATCH_ROWS
                bodies = [batch_body(r * batches + i) for i in range(batches)]  # new rows each
                started = time.perf_counter()
                list(pool.map(post, bodies))
                raw_s += time.perf_counter() - started
                fresh = rng.normal(size=(per_round, 8)).tolist()
                started, cpu_started = time.perf_counter(), time.process_time()
                predictions = client.predict_many(fresh)
                client_s += time.perf_counter() - started
                client_cpu_s += time.process_time() - cpu_started
                assert len(predictions) == per_round
    server_rows_s = rounds * per_round / raw_s
    client_rows_s = rounds * per_round / client_s
    return {
        "rows_each": rounds * per_round,
        "server_batch_rows_s": server_rows_s,
        "client_predict_many_rows_s": client_rows_s,
        "ratio": client_rows_s / server_rows_s,
        "client_cpu_ms_per_1000_rows": client_cpu_s * 1e3 * BATCH_ROWS / (rounds * per_round),
    }


@cache
def prepared(root: Path, rows: int, chunk_rows: int) -> tuple[Path, Path, Path]:
    """The default point-wise model, the file to measure and a warm-up file (once a run)."""
    from anomaly_api.training.pipeline import train_default_model

    root.mkdir(exist_ok=True)
    artifacts = root / "artifacts"
    train_default_model(artifacts)
    data, warm = root / "readings.parquet", root / "warm.parquet"
    write_readings(data, rows)
    write_readings(warm, 4 * chunk_rows)
    return artifacts, data, warm


def _sizes(ctx: Context) -> tuple[Path, Path, Path, int, int]:
    rows, chunk_rows = ctx.size(10_000, 500_000), ctx.size(2_500, 100_000)
    return (*prepared(ctx.workdir / "bulk", rows, chunk_rows), rows, chunk_rows)


def engines(ctx: Context) -> dict[str, Any]:
    """``runner.run`` locally on all cores, then on a 2-worker Dask ``LocalCluster``."""
    from anomaly_api.bulk.engines import DaskEngine, LocalEngine

    artifacts, data, warm, rows, chunk_rows = _sizes(ctx)
    cores = os.cpu_count() or 1
    with closing(LocalEngine(artifacts, None, threads=None)) as local:
        local_s = timed_run(local, data, ctx.workdir / "local.parquet", chunk_rows)
    with closing(DaskEngine(artifacts, None, n_workers=2)) as dask:
        timed_run(dask, warm, ctx.workdir / "dask-warm.parquet", chunk_rows)
        dask_s = timed_run(dask, data, ctx.workdir / "dask.parquet", chunk_rows)
    return {"bulk": {
        "rows": rows, "chunk_rows": chunk_rows, "cores": cores,
        "local": {"rows_s": rows / local_s, "rows_s_per_core": rows / local_s / cores},
        "dask_2_workers": {"rows_s": rows / dask_s, "ratio_to_local": local_s / dask_s},
    }}  # fmt: skip


def cli(ctx: Context) -> dict[str, Any]:
    """``anomaly-api score`` on the same file in a child: wall time and peak RSS."""
    artifacts, data, _, rows, chunk_rows = _sizes(ctx)
    env = clean_env({"ANOMALY_ARTIFACTS_DIR": str(artifacts)})
    run = cli_run(["score", "--data", str(data), "--out", str(ctx.workdir / "cli.parquet"),
                   "--chunk-rows", str(chunk_rows), "--no-progress"], env)  # fmt: skip
    return {"bulk": {"cli": {**run, "rows": rows, "rows_s_incl_start": rows / run["wall_s"]}}}


def client(ctx: Context) -> dict[str, Any]:
    """The client's ``predict_many`` against the server's own batch throughput."""
    artifacts = _sizes(ctx)[0]
    return {"bulk": {"client_vs_server": client_vs_server(artifacts, ctx.size(2_000, 100_000))}}


PARTS = {"engines": engines, "cli": cli, "client": client}

"""``python -m bench.bulk``: bulk scoring and client throughput on the default model.

Measures, on a Parquet file of synthetic sensor readings generated into a temporary
directory (``--rows``, default 1,000,000):

* local bulk scoring (``anomaly-api score`` in a child process): rows/s, rows/s per
  core, and the child's peak RSS; plus the bare scoring rate of ``ChunkScorer`` on the
  same rows, so reading and writing can be told apart from the model;
* the Dask engine on a 2-worker ``LocalCluster`` (processes) over the same file, as a
  ratio to the local path;
* ``AnomalyClient.predict_many`` on 100,000 rows (``rows``) through one server, as a ratio to the
  server's own batch throughput (pre-encoded 1,000-row bodies posted with the same
  concurrency; the response only checked for 200). Fresh random rows each time, so the
  prediction cache never answers.

Writes ``bench/results/bulk.json``. ``--rss-rows 10000000`` adds a run on a file of that
many rows, for the peak RSS whatever the file size. Numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from bench.servers import ROOT, service_env, service_server

RESULTS = ROOT / "bench" / "results" / "bulk.json"
CLIENT_ROWS = 100_000
BATCH_ROWS = 1_000
CONCURRENCY = 4


def write_readings(path: Path, rows: int, feature_names: list[str], chunk: int = 500_000) -> None:
    """``rows`` synthetic readings (the generator's 8 channels) plus an id column."""
    from anomaly_api.data.synthetic import generate_sensor_data

    writer: pq.ParquetWriter | None = None
    done = 0
    seed = 0
    while done < rows:
        n = min(chunk, rows - done)
        frame = generate_sensor_data(max(n, 10), seed=seed).iloc[:n]
        frame = frame[feature_names].reset_index(drop=True)
        frame.insert(0, "reading_id", np.arange(done, done + n, dtype=np.int64))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        done += n
        seed += 1
    assert writer is not None
    writer.close()


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


def bare_scoring(artifacts: Path, rows: int, threads: int) -> float:
    """Rows/s of ``ChunkScorer.answers`` on 100,000-row matrices (no I/O)."""
    from anomaly_api.bulk.scoring import load_scorer

    scorer = load_scorer(artifacts, None, threads=threads)
    X = np.ascontiguousarray(np.random.default_rng(1).normal(size=(min(rows, 200_000), 8)))
    scorer.answers(X[:5_000])
    started = time.perf_counter()
    scorer.answers(X)
    seconds = time.perf_counter() - started
    scorer.close()
    return len(X) / seconds


def stage_split(artifacts: Path) -> dict[str, float]:
    """Seconds per 100,000 rows of the neighbour query vs the whole detector scoring."""
    from anomaly_api.artifacts import load_artifact
    from anomaly_api.service.scoring import build_scorer

    model = load_artifact(artifacts, None).model
    scorer: Any = build_scorer(model, "fast")
    X = np.ascontiguousarray(np.random.default_rng(2).normal(size=(100_000, 8)))
    scorer.detector_scores(X[:2_000])
    started = time.perf_counter()
    scorer.neighbours_.query(X)
    query = time.perf_counter() - started
    started = time.perf_counter()
    scores = scorer.detector_scores(X)
    total = time.perf_counter() - started
    started = time.perf_counter()
    model.combine(scores)
    combine = time.perf_counter() - started
    return {"knn_query_s": query, "detector_scores_s": total, "combine_s": combine}


def client_vs_server(artifacts: Path, rows: int = CLIENT_ROWS, rounds: int = 5) -> dict[str, Any]:
    """predict_many on ``rows`` rows vs pre-encoded batch posts, through one server.

    Interleaved in ``rounds`` (each: 1/rounds of the rows posted raw, then as many
    through the client; fewer rounds when ``rows`` is small, at least one batch each), so
    a change of the machine's load hits both sides alike.
    """
    from anomaly_api.client import AnomalyClient

    rng = np.random.default_rng(3)
    rounds = max(1, min(rounds, rows // BATCH_ROWS))
    per_round = max(BATCH_ROWS, rows // rounds)
    headers = {"Content-Type": "application/json"}
    raw_s = client_s = 0.0
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
            for _ in range(rounds):
                bodies = [
                    orjson.dumps({"observations": [{"features": r} for r in chunk.tolist()]})
                    for chunk in np.array_split(
                        rng.normal(size=(per_round, 8)), per_round // BATCH_ROWS
                    )
                ]
                started = time.perf_counter()
                list(pool.map(post, bodies))
                raw_s += time.perf_counter() - started
                fresh = rng.normal(size=(per_round, 8)).tolist()
                started = time.perf_counter()
                predictions = client.predict_many(fresh)
                client_s += time.perf_counter() - started
                assert len(predictions) == per_round
    server_rows_s = rounds * per_round / raw_s
    client_rows_s = rounds * per_round / client_s
    return {
        "rows_each": rounds * per_round,
        "server_batch_rows_s": server_rows_s,
        "client_predict_many_rows_s": client_rows_s,
        "ratio": client_rows_s / server_rows_s,
        "target_ratio": 0.8,
    }


def prepare(root: Path, rows: int, chunk_rows: int) -> tuple[Path, Path, Path]:
    """The default point-wise model (``anomaly-api train``'s) and two Parquet files of
    readings under ``root``: ``rows`` to measure and a warm-up file of four chunks."""
    from anomaly_api.data.synthetic import SENSOR_CHANNELS
    from anomaly_api.training.pipeline import train_default_model

    artifacts = root / "artifacts"
    train_default_model(artifacts)
    data, warm = root / "readings.parquet", root / "warm.parquet"
    write_readings(data, rows, list(SENSOR_CHANNELS))
    write_readings(warm, 4 * chunk_rows, list(SENSOR_CHANNELS))
    return artifacts, data, warm


def engines(
    artifacts: Path, data: Path, warm: Path, rows: int, chunk_rows: int, root: Path
) -> dict[str, Any]:
    """``runner.run`` on ``data`` in-process on all cores, then on a 2-worker Dask
    ``LocalCluster`` (processes, model loaded by a warm-up run first): rows/s and the ratio."""
    from anomaly_api.bulk.engines import DaskEngine, LocalEngine

    cores = os.cpu_count() or 1
    local = LocalEngine(artifacts, None, threads=None)
    try:
        local_s = timed_run(local, data, root / "local.parquet", chunk_rows)
    finally:
        local.close()
    dask = DaskEngine(artifacts, None, n_workers=2)
    try:
        timed_run(dask, warm, root / "dask-warm.parquet", chunk_rows)  # model loads
        dask_s = timed_run(dask, data, root / "dask.parquet", chunk_rows)
    finally:
        dask.close()
    local_rows_s = rows / local_s
    return {
        "rows": rows,
        "chunk_rows": chunk_rows,
        "cores": cores,
        "local": {
            "rows_s": local_rows_s,
            "rows_s_per_core": local_rows_s / cores,
            "target_rows_s_per_core": 40_000,
        },
        "dask_2_workers": {
            "rows_s": rows / dask_s,
            "ratio_to_local": local_s / dask_s,
            "target_ratio": 0.7,
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rss-rows", type=int, default=0, help="also a run on this many rows")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--skip-client", action="store_true")
    args = parser.parse_args(argv)

    from anomaly_api.data.synthetic import SENSOR_CHANNELS

    cores = os.cpu_count() or 1
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": cores,
            "python": platform.python_version(),
            "load_avg_1m_at_start": os.getloadavg()[0],
        },
        "rows": args.rows,
        "chunk_rows": args.chunk_rows,
    }
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        root = Path(tmp)
        artifacts, data, warm = prepare(root, args.rows, args.chunk_rows)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANOMALY_")}
        env["ANOMALY_ARTIFACTS_DIR"] = str(artifacts)

        report["bare_scoring_rows_s"] = {
            f"threads_{t}": bare_scoring(artifacts, args.rows, t) for t in (1, cores)
        }
        report["stages_per_100k_rows"] = stage_split(artifacts)

        cli = cli_run(
            ["score", "--data", str(data), "--out", str(root / "cli.parquet"),
             "--chunk-rows", str(args.chunk_rows), "--no-progress"],
            env,
        )  # fmt: skip
        report["local_cli"] = cli | {"rows_s_incl_start": args.rows / cli["wall_s"]}
        measured = engines(artifacts, data, warm, args.rows, args.chunk_rows, root)
        report["local"], report["dask_2_workers"] = measured["local"], measured["dask_2_workers"]
        if args.rss_rows:
            big = root / "big.parquet"
            write_readings(big, args.rss_rows, list(SENSOR_CHANNELS))
            rss = cli_run(
                ["score", "--data", str(big), "--out", str(root / "big-out.parquet"),
                 "--chunk-rows", str(args.chunk_rows), "--no-progress"],
                env,
            )  # fmt: skip
            report["rss_run"] = rss | {"rows": args.rss_rows,
                                       "input_mb": big.stat().st_size / 1e6}  # fmt: skip
        if not args.skip_client:
            report["client_vs_server"] = client_vs_server(artifacts)
    report["machine"]["load_avg_1m_at_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

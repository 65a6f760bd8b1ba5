"""The Dask engine (a real LocalCluster of 2 worker processes) and ``--via`` a real server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from distributed import LocalCluster

from anomaly_api.bulk import runner
from anomaly_api.bulk.engines import DaskEngine, LocalEngine
from bulk.conftest import readings, run_score
from e2e.e2e_service import run_service


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local


@pytest.fixture(scope="module")
def input_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bulk-engines") / "in.parquet"
    readings(20_000, seed=9).to_parquet(path, index=False)
    return path


def local_output(artifacts: Path, data: Path, out: Path) -> pd.DataFrame:
    engine = LocalEngine(artifacts, None, threads=2)
    try:
        runner.run(data, out, engine, chunk_rows=2_500)
    finally:
        engine.close()
    return pd.read_parquet(out)


def test_dask_results_are_identical_and_the_model_loads_once_per_worker(
    artifacts: Path, input_file: Path, tmp_path: Path, cluster: LocalCluster
) -> None:
    expected = local_output(artifacts, input_file, tmp_path / "local.parquet")
    engine = DaskEngine(artifacts, None, address=cluster.scheduler_address)
    try:
        summary = runner.run(input_file, tmp_path / "dask.parquet", engine, chunk_rows=1_000)
        loads = engine.loads_per_worker()
    finally:
        engine.close()
    assert summary.rows == 20_000
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "dask.parquet"), expected, check_exact=True
    )
    assert len(loads) == 2
    key = f"{artifacts.resolve()}@tiny-1"
    # 20 chunks over 2 workers, each worker loaded the model exactly once
    assert sorted(worker[key] for worker in loads.values()) == [1, 1]


def test_cli_with_address_of_an_existing_cluster(
    artifacts: Path, input_file: Path, tmp_path: Path, cluster: LocalCluster
) -> None:
    out = tmp_path / "out.parquet"
    done = run_score(
        input_file,
        out,
        "--artifacts-dir",
        str(artifacts),
        "--engine",
        "dask",
        "--address",
        cluster.scheduler_address,
        "--chunk-rows",
        "3000",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    assert "scored 20,000 rows" in done.stdout
    expected = local_output(artifacts, input_file, tmp_path / "local.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_exact=True)


def thread_pool_sizes() -> set[int]:
    from threadpoolctl import threadpool_info

    return {int(pool["num_threads"]) for pool in threadpool_info()}


def test_dask_local_cluster_by_default(artifacts: Path, tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    readings(3_000, seed=2).to_csv(data, index=False)
    engine = DaskEngine(artifacts, "tiny-1", n_workers=2)
    try:
        assert engine.n_workers == 2
        pools = engine.client.run(thread_pool_sizes)
        assert list(pools.values()) == [{1}, {1}]  # a forked worker's numpy uses one thread
        runner.run(data, tmp_path / "dask.parquet", engine, chunk_rows=500)
    finally:
        engine.close()
    expected = local_output(artifacts, data, tmp_path / "local.parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "dask.parquet"), expected, check_exact=True
    )


def test_via_a_running_service_gives_the_same_answers(artifacts: Path, tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    readings(2_500, seed=6).to_csv(data, index=False)
    served = tmp_path / "served"
    shutil.copytree(artifacts, served)
    out = tmp_path / "via.parquet"
    with run_service(served, tmp_path) as service:
        done = run_score(data, out, "--via", service.url, "--chunk-rows", "1100", "--no-progress")
        wrong = run_score(
            data,
            tmp_path / "w.parquet",
            "--via",
            service.url,
            "--version",
            "other",
            "--no-progress",
        )
    assert done.returncode == 0, done.stderr
    expected = local_output(artifacts, data, tmp_path / "local.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_exact=True)
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (
        f"error: the service at {service.url} serves 'tiny-1', not 'other'"
    )

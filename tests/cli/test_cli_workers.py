"""``anomaly-api serve --workers``: how many, refused with one clear line when it cannot work,
and the cgroup-aware default (the processes themselves: tests/e2e/test_workers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

import anomaly_api.cli.shutdown
import anomaly_api.cli.workers
import anomaly_api.logging_config
from anomaly_api.cli.main import app
from anomaly_api.cli.workers import (
    MULTIPROC_ENV,
    OVERCOMMIT,
    available_cores,
    cgroup_cpu_limit,
    resolve_workers,
)
from anomaly_api.config import get_settings

runner = CliRunner()
REDIS = "redis://127.0.0.1:6379/0"  # only named: nothing connects in these tests


@pytest.fixture
def uvicorn_calls(
    monkeypatch: pytest.MonkeyPatch, tiny_artifacts_dir: Path
) -> Iterator[list[tuple[Any, dict[str, Any], str | None]]]:
    """What ``uvicorn.run`` (one worker) or the supervisor (several, in a real metrics
    directory) would have been given, and the metrics directory the workers would see."""
    calls: list[tuple[Any, dict[str, Any], str | None]] = []

    def run(app: Any, **kwargs: Any) -> None:
        calls.append((app, kwargs, os.environ.get(MULTIPROC_ENV)))

    def run_workers(workers: int, options: dict[str, Any]) -> None:
        with anomaly_api.cli.workers.metrics_directory():
            run(anomaly_api.cli.workers.WORKER_APP, workers=workers, **options)

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(anomaly_api.cli.workers, "run_workers", run_workers)
    monkeypatch.setattr(anomaly_api.cli.shutdown, "exit_cleanly_after_sigterm", lambda: None)
    monkeypatch.setattr(anomaly_api.logging_config, "configure_logging", lambda *a: None)
    for name in ("ANOMALY_WORKERS", "ANOMALY_REDIS_URL", "REDIS_URL", MULTIPROC_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANOMALY_ARTIFACTS_DIR", str(tiny_artifacts_dir))
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def _serve(*args: str) -> Any:
    return runner.invoke(app, ["serve", "--no-train-if-missing", *args])


@pytest.mark.parametrize(
    ("workers", "says"),
    [
        ("0", "--workers must be at least 1, not 0"),
        ("-3", "--workers must be at least 1, not -3"),
        ("100000", f"more than {OVERCOMMIT} per available core"),
        ("two", "Invalid value for '--workers'"),
    ],
)
def test_bad_worker_counts_are_refused_with_one_line(
    uvicorn_calls: list[Any], monkeypatch: pytest.MonkeyPatch, workers: str, says: str
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    result = _serve("--workers", workers)
    assert result.exit_code == 2
    assert says in result.output
    assert "Traceback" not in result.output
    assert uvicorn_calls == []


def test_more_than_one_worker_without_redis_is_refused(uvicorn_calls: list[Any]) -> None:
    result = _serve("--workers", "2")
    assert result.exit_code == 2
    assert "--workers 2 needs REDIS_URL" in result.output
    assert uvicorn_calls == []


def test_a_bad_setting_names_the_variable(
    uvicorn_calls: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANOMALY_WORKERS", "0")
    result = _serve()
    assert result.exit_code == 2
    assert "ANOMALY_WORKERS" in result.output
    assert uvicorn_calls == []


def test_several_workers_run_the_factory_with_a_fresh_metrics_directory(
    uvicorn_calls: list[tuple[Any, dict[str, Any], str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS)
    monkeypatch.setenv("ANOMALY_WORKERS", "1")
    result = _serve("--workers", "2")  # the option wins over the setting
    assert result.exit_code == 0, result.output
    ((target, kwargs, directory),) = uvicorn_calls
    assert target == "anomaly_api.cli.workers:worker_app"
    assert kwargs["workers"] == 2
    assert directory is not None
    assert "anomaly-api-metrics-" in directory
    assert not Path(directory).exists()  # removed when the server ends
    assert MULTIPROC_ENV not in os.environ


def test_a_blank_setting_is_the_default(
    uvicorn_calls: list[tuple[Any, dict[str, Any], str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANOMALY_WORKERS", "")  # compose's ${ANOMALY_WORKERS:-}
    result = _serve()  # no Redis: the default is one worker
    assert result.exit_code == 0, result.output
    ((target, _, _),) = uvicorn_calls
    assert not isinstance(target, str)


def test_the_default_is_one_worker_per_core_with_redis_and_one_without() -> None:
    assert resolve_workers(None, shared=True, cores=6) == 6
    assert resolve_workers(None, shared=False, cores=6) == 1
    assert resolve_workers(3, shared=True, cores=2) == 3
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))


def test_one_worker_serves_the_app_in_this_process(
    uvicorn_calls: list[tuple[Any, dict[str, Any], str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANOMALY_WORKERS", "1")
    result = _serve()
    assert result.exit_code == 0, result.output
    ((target, kwargs, directory),) = uvicorn_calls
    assert not isinstance(target, str)  # the app object, built here
    assert "workers" not in kwargs
    assert directory is None


def _cgroup(tmp_path: Path, own: str, quotas: dict[str, str]) -> float | None:
    root = tmp_path / "cgroup"
    root.mkdir(parents=True)
    for relative, quota in quotas.items():
        directory = root / relative
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cpu.max").write_text(f"{quota}\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(own)
    return cgroup_cpu_limit(root, proc)


def test_the_tightest_cgroup_quota_counts(tmp_path: Path) -> None:
    quotas = {".": "max 100000", "pod": "350000 100000", "pod/app": "150000 100000"}
    assert _cgroup(tmp_path, "0::/pod/app\n", quotas) == 1.5
    assert _cgroup(tmp_path / "b", "0::/pod/app\n", {"pod/app": "max 100000"}) is None
    # inside a container the namespace root is its own cgroup: "0::/"
    assert _cgroup(tmp_path / "c", "0::/\n", {".": "200000 100000"}) == 2.0
    # a cgroup v1 host: the cpu controller's quota files, "-1" for none
    v1 = "4:memory:/x\n3:cpu,cpuacct:/pod\n0::/\n"
    assert _cgroup(tmp_path / "d", v1, {}) is None
    assert _v1(tmp_path / "e", v1, "cpu,cpuacct/pod", "250000", "100000") == 2.5
    assert _v1(tmp_path / "f", v1, "cpu,cpuacct", "-1", "100000") is None


def _v1(tmp_path: Path, own: str, relative: str, quota: str, period: str) -> float | None:
    directory = tmp_path / "cgroup" / relative
    directory.mkdir(parents=True)
    (directory / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (directory / "cpu.cfs_period_us").write_text(f"{period}\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(own)
    return cgroup_cpu_limit(tmp_path / "cgroup", proc)

"""How many worker processes ``anomaly-api serve`` runs, and what each one starts with.

Each worker is a whole service (its own model in memory, caches, drift window) sharing
nothing with the others but Redis and the artifact directory. uvicorn's supervisor starts
them, replaces one that dies and restarts them one at a time on SIGHUP; on Linux it gets
one ``SO_REUSEPORT`` listening socket per worker so that the kernel spreads new connections
over them (``anomaly_api.cli.supervisor`` says why, and what a dead worker's connections
do). The default is one worker per core the process may use, counting its CPU affinity and
the cgroup CPU quota a container limit sets (v2 ``cpu.max``, v1 CFS quota):
``os.cpu_count`` sees the host's cores, not the container's, and a worker per host core on
a 2-core quota only contends. No library reads the quota (``os.process_cpu_count`` counts
affinity only).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from anomaly_api.service.metrics_multiprocess import MULTIPROC_ENV

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "MULTIPROC_ENV",
    "available_cores",
    "cgroup_cpu_limit",
    "metrics_directory",
    "resolve_workers",
    "run_workers",
    "worker_app",
]

WORKER_APP = "anomaly_api.cli.workers:worker_app"


_CGROUP_ROOT = Path("/sys/fs/cgroup")
OVERCOMMIT = 2
"""At most this many workers per available core: beyond, they only compete for it."""


def cgroup_cpu_limit(
    root: Path = _CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """Cores the cgroup CPU quotas allow this process, the tightest of its cgroup and its
    ancestors (v2 ``cpu.max``; v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` on older
    hosts), or ``None`` when no quota is set or readable."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers and "cpu" not in controllers.split(","):
            continue
        base = root / controllers if controllers else root  # v1: one mount per controller
        directory = base / path.strip("/")
        while True:  # inside a container the leaf may not exist: its mount is the base
            limit = _quota(directory)
            if limit is not None:
                limits.append(limit)
            if directory == base or base not in directory.parents:
                break
            directory = directory.parent
    return min(limits) if limits else None


def _quota(directory: Path) -> float | None:
    """Cores the quota set on ``directory`` allows, or ``None`` (none set, unreadable)."""
    try:
        if (directory / "cpu.max").exists():
            quota, period = (directory / "cpu.max").read_text().split()[:2]
        else:
            quota = (directory / "cpu.cfs_quota_us").read_text().strip()
            period = (directory / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1") or float(period) <= 0:
            return None
        return float(quota) / float(period)
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """Whole cores this process may use: its CPU affinity, capped by the cgroup quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, math.floor(limit)))
    return cores


def resolve_workers(requested: int | None, *, shared: bool, cores: int) -> int:
    """The number of workers to run, or ``ValueError`` saying why ``requested`` is refused.

    ``shared`` is whether Redis is configured: without it, streams, caches and admin
    swaps would live in one worker each, so the default is one worker and more are refused.
    """
    if requested is None:
        return cores if shared else 1
    if requested < 1:
        raise ValueError(f"--workers must be at least 1, not {requested}")
    if requested > OVERCOMMIT * cores:
        raise ValueError(
            f"--workers {requested} is more than {OVERCOMMIT} per available core "
            f"({cores} core(s) here, affinity and cgroup quota counted): at most "
            f"{OVERCOMMIT * cores}"
        )
    if requested > 1 and not shared:
        raise ValueError(
            f"--workers {requested} needs REDIS_URL: without Redis each worker would keep "
            "its own streams and prediction cache and an admin reload or threshold revision "
            "would reach one worker only; set REDIS_URL, or run one worker per replica"
        )
    return requested


@contextmanager
def metrics_directory() -> Iterator[Path]:
    """A fresh directory for prometheus_client's multiprocess files, named in the
    environment the workers inherit, removed afterwards (stale files would add a past
    run's counts to this one's)."""
    path = Path(tempfile.mkdtemp(prefix="anomaly-api-metrics-"))
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def worker_app() -> FastAPI:
    """The app factory each worker process calls (uvicorn imports it by name): a spawned
    worker starts from a bare interpreter, so it configures its own logging first."""
    from anomaly_api.api.app import create_app
    from anomaly_api.config import get_settings
    from anomaly_api.logging_config import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


def run_workers(
    workers: int, options: dict[str, Any], *, app: str = WORKER_APP, factory: bool = True
) -> None:
    """Serve ``app`` (by default the service's factory) with ``workers`` processes under
    the supervisor (``options``: the ``uvicorn.Config`` keywords) until SIGTERM or SIGINT
    has drained every worker."""
    from anomaly_api.cli.supervisor import supervisor_for

    config = uvicorn.Config(app, factory=factory, workers=workers, **options)
    with metrics_directory():  # every worker's metrics, combined by whichever one is scraped
        supervisor_for(config).run()

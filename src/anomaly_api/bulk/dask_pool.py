"""A pool of Dask workers running tasks: a new local cluster or a running scheduler.

Kept apart from the engines (which import the model code) so that a command can start
the fork server of its local workers before it imports anything heavy itself: the server
then imports the workers' modules on the other core while the command checks its
options and reads its data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["DaskPool", "guided_bundles", "pool_meanwhile", "start_fork_server"]

T = TypeVar("T")


class DaskPool:
    """A Dask client of a new ``LocalCluster`` of processes (``address`` None) or of the
    scheduler at ``address``, running tasks with a bounded number in flight.

    A new cluster's workers fork from one server process (``start_fork_server``) that
    imported ``preload`` (the modules their tasks need) once, with one BLAS/OpenMP thread
    per worker as Dask sets it; spawning each worker would import them all again, which
    on a small machine costs about as much as training a dozen small models."""

    def __init__(
        self,
        address: str | None,
        n_workers: int | None,
        threads_per_worker: int,
        preload: tuple[str, ...] = (),
    ):
        from distributed import Client

        self._cluster: Any = None
        if address is None:
            start_fork_server(preload)
            self._cluster = _local_cluster(n_workers, threads_per_worker)
        self.client: Any = Client(self._cluster if address is None else address)  # type: ignore[no-untyped-call]
        self.n_workers = max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def in_order(
        self, items: Iterable[T], task: Callable[[T], tuple[Any, ...]]
    ) -> Iterator[tuple[T, Any]]:
        """``(item, result)`` of ``task(item)`` (a function and its arguments) run on the
        cluster, in the items' order. Two tasks per worker are in flight and each task that
        ends makes room for the next item, so a worker that finishes early never waits for
        an older task on another; results are held back for the order, at most four tasks
        per worker ahead of the oldest one not yet yielded."""
        from distributed import as_completed

        pending = enumerate(items)
        in_flight, ahead = 2 * self.n_workers, 4 * self.n_workers
        running: Any = as_completed()  # type: ignore[no-untyped-call]
        submitted: dict[str, tuple[int, T]] = {}  # future key -> (index, item)
        ready: dict[int, tuple[T, Any]] = {}
        next_out = 0

        def submit_next() -> bool:
            """Submit the next item's task; False when no item is left."""
            entry = next(pending, None)
            if entry is None:
                return False
            function, *args = task(entry[1])
            future = self.client.submit(function, *args, pure=False)
            submitted[future.key] = entry
            running.add(future)
            return True

        while len(submitted) < in_flight and submit_next():
            pass
        for future in running:
            index, item = submitted.pop(future.key)
            ready[index] = (item, future.result())
            while next_out in ready:
                yield ready.pop(next_out)
                next_out += 1
            # held back (ready) and running together stay within ``ahead`` of ``next_out``
            while len(submitted) < in_flight and len(ready) + len(submitted) < ahead:
                if not submit_next():
                    break

    def close(self) -> None:
        """Close the client and the cluster it started."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


@contextmanager
def pool_meanwhile(
    address: str | None,
    n_workers: int | None,
    threads_per_worker: int,
    preload: tuple[str, ...] = (),
) -> Iterator[Callable[[], DaskPool]]:
    """A ``DaskPool`` started in a thread while the block runs: the block calls the
    function it is given to wait for the pool (it raises what starting the pool raised).
    The pool is closed when the block ends, however it ends; when the block raises, that
    error is the one that propagates."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="dask-pool-start") as executor:
        starting = executor.submit(DaskPool, address, n_workers, threads_per_worker, preload)
        try:
            yield starting.result
        finally:
            if starting.exception() is None:  # waits for the start to end
                starting.result().close()


def guided_bundles(items: Sequence[T], parts: int) -> Iterator[list[T]]:
    """``items`` in order, cut into consecutive bundles by guided self-scheduling: each
    bundle is ``1/parts`` of the items not yet handed out (rounded up), so the first are
    large and the last hold one item each. Bundles are cut as they are asked for: a pool
    that asks for the next one when a task ends sizes it by what is left then."""
    start = 0
    while start < len(items):
        size = math.ceil((len(items) - start) / parts)
        yield list(items[start : start + size])
        start += size


def _local_cluster(n_workers: int | None, threads: int) -> Any:
    """A ``LocalCluster`` of processes forked from the fork server, without the periodic
    work that competes with the tasks for the CPU (a few cores run the scheduler and the
    workers alike) and that a pool keeping two tasks per worker does not need: the
    workers' statistical profiler (a stack sample of every task every 10 ms), the 20 ms
    tick that only detects a blocked event loop, memory and system sampling several times
    a second (memory is still watched, once a second) and the scheduler's work stealing
    (rebalancing every 100 ms)."""
    import dask
    from distributed import LocalCluster

    config = {
        "distributed.worker.multiprocessing-method": "forkserver",
        "distributed.worker.profile.enabled": False,
        "distributed.admin.tick.interval": "1s",
        "distributed.admin.system-monitor.interval": "2s",
        "distributed.worker.memory.monitor-interval": "1s",
        "distributed.scheduler.work-stealing": False,
    }
    with dask.config.set(config):
        return LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n_workers,
            threads_per_worker=threads,
            processes=True,
            dashboard_address=":0",  # any free port: the scheduler always serves HTTP
        )


def start_fork_server(preload: tuple[str, ...]) -> None:
    """Start this process's fork server (if not yet running) with ``distributed`` and
    ``preload`` imported, under Dask's pre-spawn environment (one BLAS/OpenMP thread per
    worker): a forked worker keeps the thread pools it inherits, so Dask setting them per
    worker would come too late. Returns at once, the server importing in its own process,
    so that a caller can start it first and do its own work meanwhile. Once running, the
    server stays as it is (Dask's own preload list is not applied)."""
    import multiprocessing
    import multiprocessing.forkserver
    import os

    multiprocessing.get_context("forkserver").set_forkserver_preload(["distributed", *preload])
    added = {k: v for k, v in _pre_spawn_environ().items() if k not in os.environ}
    os.environ.update(added)  # variables already set win, as they do for Dask
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        for name in added:
            os.environ.pop(name, None)


def _pre_spawn_environ() -> dict[str, str]:
    """Dask's ``distributed.nanny.pre-spawn-environ``: ``distributed``'s defaults under the
    user's configuration. Until ``distributed`` is imported its defaults file is read here
    as ``distributed`` reads it on import: importing it (and numpy with it) would delay
    the fork server."""
    import importlib.util
    import sys
    from pathlib import Path

    import dask.config
    import yaml  # type: ignore[import-untyped]  # no stubs pinned

    spec = None if "distributed" in sys.modules else importlib.util.find_spec("distributed")
    if spec is not None and spec.submodule_search_locations:
        defaults = Path(next(iter(spec.submodule_search_locations))) / "distributed.yaml"
        with defaults.open() as file:
            dask.config.update_defaults(yaml.safe_load(file))
    environ: dict[str, object] = dask.config.get("distributed.nanny.pre-spawn-environ")
    return {k: str(v) for k, v in environ.items() if v is not None}

"""Where chunks are scored: in this process, on a Dask cluster, or through the service.

Every engine takes validated chunks in file order and yields ``(chunk, answers)`` in the
same order, holding at most a few chunks in flight, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from anomaly_api.bulk.backtest import ReplayedStream, load_replayer, point_wise_error
from anomaly_api.bulk.chunk_scorer import Answers, ChunkScorer, load_scorer
from anomaly_api.bulk.dask_pool import DaskPool
from anomaly_api.bulk.tables import Chunk


class Engine(Protocol):
    """Scores chunks; ``feature_names`` and ``detector_names`` describe the model used."""

    version: str
    feature_names: tuple[str, ...]
    detector_names: tuple[str, ...]

    def score(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, Answers]]:
        """``(chunk, answers)`` for each chunk, in order."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...


class LocalEngine:
    """The fast path in this process, each chunk split over ``threads`` threads."""

    def __init__(self, artifacts_dir: Path, version: str | None, threads: int | None) -> None:
        self._scorer: ChunkScorer = load_scorer(artifacts_dir, version, threads=threads)
        self.version = self._scorer.version
        self.feature_names = self._scorer.feature_names
        self.detector_names = self._scorer.detector_names

    def score(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, Answers]]:
        for chunk in chunks:
            yield chunk, self._scorer.answers(chunk.X)

    def close(self) -> None:
        self._scorer.close()


class DaskEngine:
    """Dask distributed: a ``LocalCluster`` of processes, or the cluster at ``address``.

    Only each chunk's feature matrix travels to a worker and only the answer columns come
    back; the input's other columns stay here and are written in order. Each worker loads
    the model once (``worker_scorer`` is cached per process); with ``address`` the
    workers must see ``artifacts_dir`` at the same path (a mounted volume).
    """

    def __init__(
        self,
        artifacts_dir: Path,
        version: str | None,
        *,
        address: str | None = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
    ) -> None:
        manifest = model_manifest(artifacts_dir, version)
        self.version = manifest.version
        self.feature_names = tuple(manifest.feature_names)
        self.detector_names = tuple(d.name for d in manifest.detectors)
        self._artifacts_dir = str(artifacts_dir.resolve())
        self._threads = threads_per_worker
        preload = ("anomaly_api.bulk.chunk_scorer",)
        self._pool = DaskPool(address, n_workers, threads_per_worker, preload)
        self.client = self._pool.client
        self.n_workers = self._pool.n_workers

    def score(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, Answers]]:
        from anomaly_api.bulk.chunk_scorer import score_on_worker

        directory, version, threads = self._artifacts_dir, self.version, self._threads
        return self._pool.in_order(
            chunks, lambda chunk: (score_on_worker, directory, version, chunk.X, threads)
        )

    def loads_per_worker(self) -> dict[str, dict[str, int]]:
        """Model loads of each worker process (for tests and the summary)."""
        from anomaly_api.bulk.chunk_scorer import worker_loads

        loads: dict[str, dict[str, int]] = self.client.run(worker_loads)
        return loads

    def close(self) -> None:
        self._pool.close()


class ServiceEngine:
    """Scores through a running service with ``AnomalyClient.predict_many``."""

    def __init__(self, url: str, api_key: str | None, version: str | None) -> None:
        from anomaly_api.client import AnomalyClient

        self._client = AnomalyClient(url, api_key=api_key)
        info = self._client.model_info()
        if version is not None and version != info.version:
            from anomaly_api.data.errors import DataError

            self._client.close()
            raise DataError(f"the service at {url} serves {info.version!r}, not {version!r}")
        self.version = info.version
        self.feature_names = info.feature_names
        self.detector_names = info.detector_names

    def score(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, Answers]]:
        from anomaly_api.client import answer_columns
        from anomaly_api.client._frame import prediction_record

        columns = answer_columns(self.detector_names)
        for chunk in chunks:
            predictions = self._client.predict_many(chunk.X.tolist())
            records = [prediction_record(p, self.detector_names) for p in predictions]
            answers: Answers = {
                name: np.asarray(
                    [record[i] for record in records],
                    dtype=bool if name == "is_anomaly" else np.float64,
                )
                for i, name in enumerate(columns)
            }
            yield chunk, answers

    def close(self) -> None:
        self._client.close()


def model_manifest(artifacts_dir: Path, version: str | None) -> Any:
    """The manifest of ``version`` (``LATEST`` if None), read without loading the model."""
    from anomaly_api.artifacts import ArtifactNotFoundError, latest_version, read_manifest

    chosen = version or latest_version(artifacts_dir)
    if chosen is None:
        raise ArtifactNotFoundError(f"no trained model in {artifacts_dir} (no LATEST file)")
    return read_manifest(artifacts_dir, chosen)


Stream = tuple[str, NDArray[np.float64], NDArray[np.float64]]
"""A stream to replay: its id, timestamps (epoch seconds) and readings, in time order."""


class ReplayEngine(Protocol):
    """Replays streams with a time-aware model (see ``anomaly_api.bulk.backtest``)."""

    version: str
    feature_names: tuple[str, ...]

    def replay(self, streams: Iterable[Stream]) -> Iterator[tuple[str, ReplayedStream]]:
        """``(stream id, its replay)`` for each stream, in order."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...


class LocalReplayEngine:
    """Streams replayed one after the other in this process."""

    def __init__(self, artifacts_dir: Path, version: str | None) -> None:
        self._replayer = load_replayer(artifacts_dir, version)
        self.version = self._replayer.version
        self.feature_names = self._replayer.feature_names

    def replay(self, streams: Iterable[Stream]) -> Iterator[tuple[str, ReplayedStream]]:
        for stream_id, timestamps, X in streams:
            yield stream_id, self._replayer.replay_stream(stream_id, timestamps, X)

    def close(self) -> None:
        pass


class DaskReplayEngine:
    """Dask distributed, partitioned by stream: each stream is one task on one worker,
    which loads the model once (``worker_replayer``); answers come back in stream order."""

    def __init__(
        self,
        artifacts_dir: Path,
        version: str | None,
        *,
        address: str | None = None,
        n_workers: int | None = None,
    ) -> None:
        manifest = model_manifest(artifacts_dir, version)
        if manifest.time_aware is None:
            raise point_wise_error(manifest.version)
        self.version = manifest.version
        self.feature_names = tuple(manifest.feature_names)
        self._artifacts_dir = str(artifacts_dir.resolve())
        self._pool = DaskPool(address, n_workers, 1, ("anomaly_api.bulk.backtest",))

    def replay(self, streams: Iterable[Stream]) -> Iterator[tuple[str, ReplayedStream]]:
        from anomaly_api.bulk.backtest import replay_on_worker

        directory, version = self._artifacts_dir, self.version
        done = self._pool.in_order(
            streams, lambda s: (replay_on_worker, directory, version, s[0], s[1], s[2])
        )
        for (stream_id, _, _), replayed in done:
            yield stream_id, replayed

    def close(self) -> None:
        self._pool.close()

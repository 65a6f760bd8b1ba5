"""Prometheus source: PromQL range queries (``/api/v1/query_range``) grouped into streams.

Each series of the answer belongs to the stream of its ``group_by`` label values and is
one channel (its ``channel_label`` value, or the name of the query it answered). A
timestamp where a stream lacks one of its channels (a missed scrape, a stale series, NaN)
is a gap: that reading is not made, and is counted.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

from anomaly_api.watch.config import EnvAuth, PrometheusSourceConfig
from anomaly_api.watch.scoring import Readings
from anomaly_api.watch.sources import SourceError, stream_id_of

__all__ = ["Fetched", "PrometheusSource", "aligned_range"]

MAX_POINTS = 10_000
"""Steps per query (Prometheus refuses more than 11,000 points per series)."""


@dataclass
class Fetched:
    """One range's readings per stream, and the gaps found."""

    readings: list[Readings] = field(default_factory=list)
    gaps: int = 0


def aligned_range(after: float, now: float, step: float) -> tuple[float, float] | None:
    """The step-aligned range of timestamps after ``after`` up to ``now`` (None: empty),
    so every run asks for the same grid and no timestamp is read twice."""
    start = (math.floor(after / step) + 1) * step
    end = math.floor(now / step) * step
    return (start, end) if start <= end else None


def _auth(config: EnvAuth | None) -> httpx.Auth | dict[str, str] | None:
    if config is None:
        return None
    if config.bearer_token_env is not None:
        token = os.environ.get(config.bearer_token_env, "")
        return {"Authorization": f"Bearer {token}"}
    user = os.environ.get(config.username_env or "", "")
    password = os.environ.get(config.password_env or "", "")
    return httpx.BasicAuth(user, password)


class PrometheusSource:
    """Reads one job's queries over a range and groups the series into streams."""

    def __init__(self, job: str, config: PrometheusSourceConfig) -> None:
        self.job = job
        self.config = config
        auth = _auth(config.auth)
        self.client = httpx.AsyncClient(
            base_url=config.url.rstrip("/"),
            timeout=config.timeout,
            auth=auth if isinstance(auth, httpx.Auth) else None,
            headers=auth if isinstance(auth, dict) else None,
        )

    async def fetch(self, start: float, end: float) -> Fetched:
        """Every stream's readings with timestamps in ``[start, end]`` on the step grid."""
        config = self.config
        step = config.step
        # channel values per stream: stream key -> timestamp -> channel -> value
        found: dict[tuple[str, ...], dict[float, dict[str, float]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        channels: dict[tuple[str, ...], set[str]] = defaultdict(set)
        queries = config.queries.items() if config.queries is not None else [(None, config.query)]
        chunk = step * (MAX_POINTS - 1)
        lo = start
        while lo <= end:
            hi = min(end, lo + chunk)
            for channel, query in queries:
                for series in await self._query(str(query), lo, hi, step):
                    labels: dict[str, str] = series.get("metric", {})
                    name = channel if channel is not None else labels.get(str(config.channel_label))
                    if name is None:
                        continue
                    key = tuple(labels.get(g, "") for g in config.group_by)
                    channels[key].add(name)
                    for stamp, raw in series.get("values", []):
                        found[key][float(stamp)][name] = float(raw)
            lo = hi + step
        fetched = Fetched()
        for key, by_time in sorted(found.items()):
            wanted = channels[key]
            stamps, rows = [], []
            for stamp in sorted(by_time):
                row = by_time[stamp]
                if row.keys() == wanted and all(math.isfinite(v) for v in row.values()):
                    stamps.append(stamp)
                    rows.append(row)
                else:
                    fetched.gaps += 1
            fetched.readings.append(
                Readings(
                    stream_id=stream_id_of(self.job, list(key)),
                    labels=dict(zip(config.group_by, key, strict=True)),
                    timestamps=stamps,
                    rows=rows,
                )
            )
        return fetched

    async def _query(self, query: str, start: float, end: float, step: float) -> list[dict]:  # type: ignore[type-arg]
        params = {"query": query, "start": repr(start), "end": repr(end), "step": repr(step)}
        try:
            response = await self.client.get("/api/v1/query_range", params=params)
        except httpx.HTTPError as exc:
            raise SourceError(f"prometheus {self.config.url} unreachable: {exc!r}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            error = body.get("error") or response.text[:200]
            raise SourceError(f"prometheus answered {response.status_code}: {error}")
        data = body.get("data", {})
        if data.get("resultType") != "matrix":
            raise SourceError(f"query {query!r} is not a range vector query")
        result: list[dict] = data.get("result", [])  # type: ignore[type-arg]
        return result

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.client.aclose()

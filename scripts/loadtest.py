#!/usr/bin/env python3
"""Load with faults: drive /predict and /predict/batch against a real server while Redis
is killed and restarted and the model is hot-reloaded; every request must succeed.

Everything runs on loopback and is thrown away afterwards: two versions of the default
model trained into a temporary artifact directory, a private ``redis-server`` on a free
port (never the machine's shared one), and ``anomaly-api serve`` on another free port.
The run stops by itself after ``--duration`` seconds (or ``--max-requests``).

Timeline (fractions of the duration)::

    0.00  warm        Redis up, model v1; the cache fills from a fixed pool of rows
    0.25  redis_down  redis-server SIGKILLed: the service must answer from the model
    0.45  redis_back  redis-server restarted (empty) on the same port: caching resumes
    0.65  reloaded    LATEST -> v2 and POST /admin/reload: answers come from v2 at once

Each answer is checked against the scores computed locally from the artifact of the
version the server says it used, so a stale cached answer of the old model would be
caught. Exit status 1 when any request failed, any answer was wrong or stale, or the
server did not exit 0 on SIGTERM.

    python scripts/loadtest.py --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from anomaly_api.artifacts import load_artifact, set_latest
from anomaly_api.data.loading import synthetic_dataset
from anomaly_api.testing import RedisServer, ServerProcess
from anomaly_api.training.pipeline import train_and_save

VERSIONS = ("load-v1", "load-v2")
PHASES = (("warm", 0.0), ("redis_down", 0.25), ("redis_back", 0.45), ("reloaded", 0.65))
_TOLERANCE = 1e-9


def fit_models(artifacts_dir: Path) -> None:
    """Two versions of the default model (the real training pipeline, two seeds);
    LATEST points at the first."""
    for seed, version in enumerate(VERSIONS, start=1):
        train_and_save(synthetic_dataset(seed=seed), artifacts_dir, seed=seed, version=version)
    set_latest(artifacts_dir, VERSIONS[0])


def expected_scores(artifacts_dir: Path, pool: np.ndarray[Any, Any]) -> dict[str, list[float]]:
    """Each version's anomaly_score for every pool row, computed here, not by the server."""
    expected = {}
    for version in VERSIONS:
        model = load_artifact(artifacts_dir, version).model
        expected[version] = model.combine(model.detector_scores(pool)).anomaly_score.tolist()
    return expected


def server_env(artifacts_dir: Path, redis: RedisServer, cooldown_s: float | None) -> dict[str, str]:
    """``anomaly-api serve`` settings: the throwaway Redis as cache, warnings only."""
    env = {
        "ANOMALY_ARTIFACTS_DIR": str(artifacts_dir),
        "ANOMALY_REDIS_URL": redis.url,
        "ANOMALY_PREDICTION_CACHE": "redis",
        "ANOMALY_LOG_LEVEL": "WARNING",
    }
    if cooldown_s is not None:
        env["ANOMALY_REDIS_BREAKER_COOLDOWN_S"] = str(cooldown_s)
    return env


@dataclass
class PhaseStats:
    """What happened to the requests sent during one phase."""

    sent: int = 0
    failed: int = 0
    rows: int = 0
    cached_rows: int = 0
    wrong_answers: int = 0
    stale_version: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms or [0.0])
        return {
            "sent": self.sent,
            "failed": self.failed,
            "wrong_answers": self.wrong_answers,
            "stale_version": self.stale_version,
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "cache_hit_ratio": round(self.cached_rows / self.rows, 3) if self.rows else None,
            "errors": self.errors[:5],
        }


class LoadRun:
    """The load generator, the fault schedule and the checks."""

    def __init__(
        self,
        args: argparse.Namespace,
        base_url: str,
        pool: np.ndarray[Any, Any],
        expected: dict[str, list[float]],
    ) -> None:
        self.args = args
        self.base_url = base_url
        self.pool = pool.tolist()
        self.expected = expected
        self.phase = PHASES[0][0]
        self.stats = {name: PhaseStats() for name, _ in PHASES}
        self.new_version_since: float | None = None  # when the reload call returned
        self.events: list[str] = []
        self.rng = random.Random(0)
        self.total = 0

    def check(
        self, stats: PhaseStats, sent_at: float, indices: list[int], answers: list[dict[str, Any]]
    ) -> None:
        for index, answer in zip(indices, answers, strict=True):
            version = answer["model_version"]
            stats.rows += 1
            stats.cached_rows += bool(answer["cached"])
            if (
                self.new_version_since is not None
                and sent_at > self.new_version_since
                and version != VERSIONS[1]
            ):
                stats.stale_version += 1
            want = self.expected[version][index]
            if abs(answer["anomaly_score"] - want) > _TOLERANCE * max(1.0, abs(want)):
                stats.wrong_answers += 1

    async def one_request(self, client: httpx.AsyncClient) -> None:
        batch = self.rng.random() < 0.3
        count = self.rng.randint(2, self.args.batch_size) if batch else 1
        indices = [self.rng.randrange(len(self.pool)) for _ in range(count)]
        stats = self.stats[self.phase]
        stats.sent += 1
        self.total += 1
        sent_at = time.monotonic()
        try:
            if batch:
                body = {"observations": [{"features": self.pool[i]} for i in indices]}
                response = await client.post("/predict/batch", json=body)
            else:
                response = await client.post("/predict", json={"features": self.pool[indices[0]]})
            latency = (time.monotonic() - sent_at) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            data = response.json()
            self.check(stats, sent_at, indices, data["predictions"] if batch else [data])
            stats.latencies_ms.append(latency)
        except Exception as exc:  # every failure is counted and reported
            stats.failed += 1
            stats.errors.append(f"{type(exc).__name__}: {exc}")

    async def worker(self, client: httpx.AsyncClient, deadline: float) -> None:
        while time.monotonic() < deadline and self.total < self.args.max_requests:
            await self.one_request(client)

    async def faults(
        self, redis: RedisServer, artifacts_dir: Path, client: httpx.AsyncClient, started: float
    ) -> None:
        for name, at in PHASES[1:]:
            await asyncio.sleep(max(0.0, started + at * self.args.duration - time.monotonic()))
            if name == "redis_down":
                redis.kill()  # blocks until Redis is gone, so no later request can hit it
            elif name == "redis_back":
                # Switch first: requests sent while Redis starts may already find it up,
                # and must not count as served while it was down.
                self.phase = name
                await asyncio.to_thread(redis.start)
            elif name == "reloaded":
                set_latest(artifacts_dir, VERSIONS[1])
                response = await client.post("/admin/reload")
                self.new_version_since = time.monotonic()
                info = (await client.get("/model/info")).json()
                self.events.append(
                    f"reload -> HTTP {response.status_code} {response.json()}; "
                    f"/model/info version {info.get('version')}"
                )
                if info.get("version") != VERSIONS[1]:
                    self.stats[name].stale_version += 1
            self.phase = name
            self.events.append(f"{time.monotonic() - started:6.1f}s  {name}")

    async def run(self, redis: RedisServer, artifacts_dir: Path) -> None:
        limits = httpx.Limits(max_connections=self.args.concurrency + 2)
        async with httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=10.0) as client:
            started = time.monotonic()
            deadline = started + self.args.duration
            workers = [self.worker(client, deadline) for _ in range(self.args.concurrency)]
            await asyncio.gather(self.faults(redis, artifacts_dir, client, started), *workers)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument("--batch-size", type=int, default=50, help="largest batch sent")
    parser.add_argument("--pool", type=int, default=300, help="distinct rows sent")
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="hard cap")
    parser.add_argument(
        "--redis-cooldown", type=float, help="server's Redis breaker cooldown (s); default: its own"
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="anomaly-loadtest-") as tmp:
        root = Path(tmp)
        artifacts_dir = root / "artifacts"
        fit_models(artifacts_dir)
        pool = synthetic_dataset(seed=99, n_rows=args.pool).X  # with injected anomalies
        expected = expected_scores(artifacts_dir, pool)
        redis = RedisServer(root)
        redis.start()
        server = ServerProcess(root, server_env(artifacts_dir, redis, args.redis_cooldown))
        exit_code: int | None = None
        try:
            server.wait_ready(120.0)
            run = LoadRun(args, server.url, pool, expected)
            asyncio.run(run.run(redis, artifacts_dir))
        except Exception:
            print(server.output()[-3000:], file=sys.stderr)
            raise
        finally:
            exit_code = server.stop(30)
            redis.kill()
            server_log = server.output()
    phases = {name: stats.summary() for name, stats in run.stats.items()}
    everything = PhaseStats()
    for stats in run.stats.values():
        everything.sent += stats.sent
        everything.failed += stats.failed
        everything.wrong_answers += stats.wrong_answers
        everything.stale_version += stats.stale_version
        everything.rows += stats.rows
        everything.cached_rows += stats.cached_rows
        everything.latencies_ms += stats.latencies_ms
    report = {
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "total": everything.summary(),
        "phases": phases,
        "events": run.events,
        "server_exit_code": exit_code,
    }
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    ok = (
        everything.failed == 0
        and everything.wrong_answers == 0
        and everything.stale_version == 0
        and exit_code == 0
    )
    if not ok:
        print("FAILED; server log tail:\n" + server_log[-3000:], file=sys.stderr)
    return 0 if ok else 1


def render(report: dict[str, Any]) -> str:
    """The report as a small text table."""
    total = report["total"]
    lines = [
        f"load with faults: {report['duration_s']:.0f} s, {report['concurrency']} clients",
        f"requests sent {total['sent']}, failed {total['failed']}, wrong answers "
        f"{total['wrong_answers']}, stale version {total['stale_version']}, "
        f"p50 {total['p50_ms']} ms, p99 {total['p99_ms']} ms",
        f"{'phase':<11} {'sent':>7} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'hit ratio':>9}",
    ]
    for name, phase in report["phases"].items():
        ratio = "-" if phase["cache_hit_ratio"] is None else f"{phase['cache_hit_ratio']:.3f}"
        lines.append(
            f"{name:<11} {phase['sent']:>7} {phase['failed']:>6} "
            f"{phase['p50_ms']:>8} {phase['p99_ms']:>8} {ratio:>9}"
        )
    lines += ["events:", *(f"  {event}" for event in report["events"])]
    lines.append(f"server exit code after SIGTERM: {report['server_exit_code']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""The revision channel: messages decoded and followed through the real reloader (malformed
ones ignored and counted), and, over a throwaway Redis, announce / follow / catch up."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from anomaly_api.artifacts import MODEL_FILE
from anomaly_api.service.cache import InMemoryPredictionCache
from anomaly_api.service.reloader import ModelReloader
from anomaly_api.service.revisions import Announcement, RevisionChannel, RevisionResult
from anomaly_api.service.runtime import ServiceRuntime
from anomaly_api.testing import RedisServer
from api_testing import make_settings
from factories import fit_tiny_artifact

UNREACHABLE = "redis://127.0.0.1:9/0"  # never connected by the message-handling tests


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("revisions")
    fit_tiny_artifact(root, "tiny-1")
    fit_tiny_artifact(root, "tiny-2", seed=1)
    return root


def _runtime(artifacts: Path, version: str = "tiny-1") -> ServiceRuntime:
    settings = make_settings(artifacts, model_version=version)
    runtime = ServiceRuntime(settings, InMemoryPredictionCache(max_entries=10, ttl_s=60))
    runtime.load_model()
    assert runtime.predictor is not None
    return runtime


def _channel(
    runtime: ServiceRuntime, redis_url: str, results: list[RevisionResult], prefix: str = "t:"
) -> RevisionChannel:
    settings = make_settings(
        runtime.settings.artifacts_dir,
        redis_url=redis_url,
        revision_prefix=prefix,
        revision_retry_s=0.2,
        redis_timeout_s=0.5,
    )
    reloader = ModelReloader(runtime, runtime.build_predictor)
    return RevisionChannel.from_settings(settings, reloader, on_result=results.append)


def _message(version: str, origin: str = "other", at: float | None = None) -> bytes:
    return Announcement(version, origin, time.time() if at is None else at).encode()


async def _eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


def test_announcement_round_trips() -> None:
    sent = Announcement("tiny-1-t0a1b2c3d", "abc", 1_700_000_000.5)
    assert Announcement.decode(sent.encode()) == sent
    assert Announcement.decode(sent.encode().decode()) == sent


@pytest.mark.parametrize(
    "raw",
    [
        b"tiny-2",
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'"tiny-2"',
        b"null",
        b'{"version": "tiny-2"}',
        b'{"version": 2, "origin": "o", "at": 1}',
        b'{"version": "tiny-2", "origin": "o", "at": "now"}',
        b'{"version": "tiny-2", "origin": "o", "at": true}',
        b'{"version": "tiny-2", "origin": "o", "at": NaN}',
        b'{"version": "../../etc", "origin": "o", "at": 1}',
        b'{"version": "", "origin": "o", "at": 1}',
        json.dumps({"version": "tiny-2", "origin": "o" * 2000, "at": 1}).encode(),
        42,
        None,
    ],
)
def test_malformed_messages_decode_to_nothing(raw: object) -> None:
    assert Announcement.decode(raw) is None


async def test_messages_are_followed_ignored_or_refused(two_versions: Path, tmp_path: Path) -> None:
    runtime = _runtime(two_versions)
    results: list[RevisionResult] = []
    channel = _channel(runtime, UNREACHABLE, results)
    try:
        assert await channel.handle(b"not json") == "malformed"
        assert await channel.handle(b'{"version": "../x", "origin": "o", "at": 1}') == "malformed"
        assert await channel.handle(_message("tiny-1")) == "ignored"  # already served
        assert await channel.handle(_message("tiny-9")) == "failed"  # not on this disk
        assert runtime.predictor is not None
        assert runtime.predictor.version == "tiny-1"
        assert await channel.handle(_message("tiny-2")) == "followed"
        assert runtime.predictor.version == "tiny-2"
        # its own announcement of what it serves is ignored; an older own one is followed
        own = _message("tiny-2", origin=channel.replica_id)
        assert await channel.handle(own) == "ignored"
        assert await channel.handle(_message("tiny-1", origin=channel.replica_id)) == "followed"
    finally:
        await channel.close()
    expected = ["malformed", "malformed", "ignored", "failed", "followed", "ignored", "followed"]
    assert results == expected


async def test_a_tampered_announced_version_keeps_the_model(
    two_versions: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    artifacts = tmp_path / "artifacts"
    shutil.copytree(two_versions, artifacts)
    (artifacts / "tiny-2" / MODEL_FILE).write_bytes(b"tampered")
    runtime = _runtime(artifacts)
    results: list[RevisionResult] = []
    channel = _channel(runtime, UNREACHABLE, results)
    try:
        assert await channel.handle(_message("tiny-2")) == "failed"
    finally:
        await channel.close()
    assert runtime.predictor is not None
    assert runtime.predictor.version == "tiny-1"
    assert any("tiny-2 not followed" in r.getMessage() for r in caplog.records)


@asynccontextmanager
async def _following(
    runtime: ServiceRuntime, redis_url: str, results: list[RevisionResult]
) -> AsyncIterator[RevisionChannel]:
    channel = _channel(runtime, redis_url, results)
    channel.start()
    try:
        yield channel
    finally:
        await channel.close()


async def test_announce_follow_and_catch_up_over_redis(
    two_versions: Path, redis_server: RedisServer
) -> None:
    a, b = _runtime(two_versions), _runtime(two_versions)
    results_a: list[RevisionResult] = []
    results_b: list[RevisionResult] = []
    async with (
        _following(a, redis_server.url, results_a) as channel_a,
        _following(b, redis_server.url, results_b) as channel_b,
    ):

        async def both_subscribed() -> bool:
            return channel_a.subscribed and channel_b.subscribed

        await _eventually(both_subscribed)
        assert a.predictor is not None
        a.predictor = a.build_predictor("tiny-2")  # what an admin call does before announcing
        sent = await channel_a.announce("tiny-2")
        assert sent.sent, sent.detail
        assert "2 subscriber(s)" in sent.detail

        async def b_follows() -> bool:
            return b.predictor is not None and b.predictor.version == "tiny-2"

        await _eventually(b_follows)
        assert results_b == ["followed"]
        assert results_a == ["ignored"]  # its own announcement

    # one that was not listening catches up from the key when it subscribes
    late = _runtime(two_versions)
    async with _following(late, redis_server.url, []):

        async def late_follows() -> bool:
            return late.predictor is not None and late.predictor.version == "tiny-2"

        await _eventually(late_follows)  # it was started on tiny-1 (model_version)


async def test_an_announcement_redis_missed_is_sent_when_it_is_back(
    two_versions: Path, redis_server: RedisServer
) -> None:
    a, b = _runtime(two_versions), _runtime(two_versions, "tiny-1")
    async with (
        _following(a, redis_server.url, []) as channel_a,
        _following(b, redis_server.url, []) as channel_b,
    ):

        async def subscribed() -> bool:
            return channel_a.subscribed and channel_b.subscribed

        await _eventually(subscribed)
        redis_server.kill()
        unsent = await channel_a.announce("tiny-2")
        assert not unsent.sent
        assert "not announced: Redis unavailable" in unsent.detail
        assert channel_a.pending is not None
        assert channel_a.pending.version == "tiny-2"
        assert a.predictor is not None
        a.predictor = a.build_predictor("tiny-2")  # what the admin call swapped in
        redis_server.start()  # empty: the key is gone, the unsent announcement is not

        async def b_follows() -> bool:
            return b.predictor is not None and b.predictor.version == "tiny-2"

        await _eventually(b_follows)
        assert channel_a.pending is None


async def test_close_stops_the_subscriber_whenever_it_lands(
    two_versions: Path, redis_server: RedisServer
) -> None:
    """redis-py can swallow a cancellation that lands while it connects; close() still ends
    the task (an app's shutdown must not hang)."""
    runtime = _runtime(two_versions)
    for delay in (0.0, 0.001, 0.002, 0.003, 0.005, 0.01, 0.05):
        channel = _channel(runtime, redis_server.url, [])
        channel.start()
        await asyncio.sleep(delay)
        async with asyncio.timeout(30):
            await channel.close()
        assert not channel.subscribed


async def test_an_announcement_older_than_the_served_version_is_not_followed(
    two_versions: Path, redis_server: RedisServer
) -> None:
    """A version trained or tuned after the last announcement (a new LATEST loaded at start)
    is not undone by the old key."""
    with redis_server.client() as client:
        client.set("t:announced", _message("tiny-2", at=1_000_000.0))  # 1970: stale
    runtime = _runtime(two_versions, "tiny-1")
    results: list[RevisionResult] = []
    async with _following(runtime, redis_server.url, results):

        async def decided() -> bool:
            return bool(results)

        await _eventually(decided)
    assert results == ["ignored"]
    assert runtime.predictor is not None
    assert runtime.predictor.version == "tiny-1"


async def test_an_unsent_announcement_is_dropped_once_the_replica_swapped_again(
    two_versions: Path, redis_server: RedisServer
) -> None:
    runtime = _runtime(two_versions, "tiny-1")
    channel = _channel(runtime, redis_server.url, [])
    try:
        redis_server.kill()
        assert not (await channel.announce("tiny-2")).sent  # tiny-1 still served: a SIGHUP
        redis_server.start()
        await channel._send_pending()
        assert channel.pending is None
        with redis_server.client() as client:
            assert client.get("t:announced") is None  # nothing stale went out
    finally:
        await channel.close()

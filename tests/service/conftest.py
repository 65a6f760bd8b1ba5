"""Fixtures shared by the service tests (the cache and the stream store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from anomaly_api.testing import RedisServer, throwaway_redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server this test may kill, freeze and restart."""
    with throwaway_redis(tmp_path) as server:
        yield server

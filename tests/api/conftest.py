"""Fixtures of the HTTP API tests: the tiny model behind the in-process cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from anomaly_api.config import Settings
from api_testing import make_settings, serve_app


@pytest.fixture
def settings(tiny_artifacts_dir: Path) -> Settings:
    """Settings serving the tiny model with the in-process cache."""
    return make_settings(tiny_artifacts_dir)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app built from ``settings``."""
    async with serve_app(settings) as http:
        yield http


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared_client(tiny_artifacts_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """One app for the whole session, for tests that only send requests it must refuse.

    Tests using it run in the session's event loop (``loop_scope="session"``).
    """
    async with serve_app(make_settings(tiny_artifacts_dir)) as http:
        yield http

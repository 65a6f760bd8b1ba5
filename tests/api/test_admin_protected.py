"""Admin routes without a configured key answer loopback clients only, seen through the
client address of the ASGI scope (the real network is in tests/e2e/test_admin_network.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from anomaly_api.api.app import create_app
from anomaly_api.config import Settings
from api_testing import NORMAL, assert_error, lifespan, make_settings


@asynccontextmanager
async def client_from(settings: Settings, host: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh app whose requests come from ``host``."""
    async with lifespan(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(host, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_a_remote_client_is_refused_with_where_the_key_goes(settings: Settings) -> None:
    async with client_from(settings, "10.9.8.2") as remote:
        for path in ("/admin/reload", "/admin/thresholds"):
            response = await remote.post(path, json={"target_fpr": 0.01})
            assert_error(response, 403, "admin_key_not_configured", "ANOMALY_ADMIN_API_KEYS")
        # Only the admin routes: predictions stay open without keys.
        assert (await remote.post("/predict", json={"features": NORMAL})).status_code == 200


async def test_loopback_clients_keep_admin_routes_without_a_key(settings: Settings) -> None:
    for host in ("127.0.0.1", "::1"):
        async with client_from(settings, host) as local:
            response = await local.post("/admin/reload")
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == "tiny-1"


async def test_an_admin_key_opens_them_to_remote_clients(tiny_artifacts_dir: Path) -> None:
    keyed = make_settings(tiny_artifacts_dir, admin_api_keys=["root-key"])
    async with client_from(keyed, "10.9.8.2") as remote:
        assert_error(await remote.post("/admin/reload"), 401, "missing_api_key")
        response = await remote.post("/admin/reload", headers={"X-API-Key": "root-key"})
        assert response.status_code == 200, response.text

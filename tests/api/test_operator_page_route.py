"""The operator page's files at ``/ui``: served from the package, public even when keys are
configured (it holds no data), with headers that allow it nothing but this service."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from anomaly_api.api.routes.ui import page_file
from api_testing import make_settings, serve_app

FILES = {
    "/ui": "text/html; charset=utf-8",
    "/ui/app.js": "text/javascript; charset=utf-8",
    "/ui/style.css": "text/css; charset=utf-8",
    "/ui/icon.svg": "image/svg+xml",
}


@pytest.mark.parametrize(("path", "media_type"), FILES.items())
async def test_each_file_is_served_with_strict_headers(
    client: httpx.AsyncClient, path: str, media_type: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "connect-src", "img-src"):
        assert policy[directive] == "'self'", directive
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.content == page_file(path.removeprefix("/ui").lstrip("/") or "index.html")


async def test_the_trailing_slash_redirects_to_the_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/")
    assert response.status_code == 308
    assert httpx.URL("http://testserver/ui/").join(response.headers["location"]).path == "/ui"


async def test_unknown_files_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ui/secrets.txt")).status_code == 404
    assert (await client.get("/ui/../pyproject.toml")).status_code == 404


async def test_the_page_is_public_while_the_api_wants_a_key(tiny_artifacts_dir: Path) -> None:
    settings = make_settings(tiny_artifacts_dir, api_keys="ui-route-key")
    async with serve_app(settings) as http:
        assert (await http.get("/ui")).status_code == 200
        assert (await http.get("/ui/app.js")).status_code == 200
        assert (await http.get("/streams")).status_code == 401


def test_the_page_loads_nothing_from_elsewhere() -> None:
    html = page_file("index.html").decode()
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(links) == ["ui/app.js", "ui/icon.svg", "ui/style.css"]
    for name in ("app.js", "style.css", "icon.svg"):
        text = page_file(name).decode()
        assert "@import" not in text
        assert "url(" not in text
        # the SVG namespace is a name, not a request
        assert set(re.findall(r"https?://[^\s\"')]+", text)) <= {"http://www.w3.org/2000/svg"}
    assert "innerHTML" not in page_file("app.js").decode()

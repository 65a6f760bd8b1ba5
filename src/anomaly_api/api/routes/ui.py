"""The operator page at ``/ui``: static files shipped inside the package (``api/ui/``).

The page is public content, like the docs: it holds no data and no key. Everything it
shows comes from the API, called from the browser with the key the operator enters (kept
in the tab's sessionStorage), so the API's own key checks apply unchanged. The headers
allow the page nothing but this service: no inline script, no other origin, no framing.
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

router = APIRouter(prefix="/ui", tags=["ui"], include_in_schema=False)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
"""Sent with every file of the page."""

_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


@functools.cache
def page_file(name: str) -> bytes:
    """A file of the page, read once from the package."""
    return resources.files("anomaly_api.api").joinpath("ui", name).read_bytes()


def _file(name: str) -> Response:
    return Response(page_file(name), media_type=_FILES[name], headers=SECURITY_HEADERS)


@router.get("")
async def read_page() -> Response:
    """The page."""
    return _file("index.html")


@router.get("/")
async def redirect_to_page() -> Response:
    """``/ui/`` to ``/ui``: the page's relative links are written for ``/ui``."""
    return RedirectResponse("../ui", status_code=308)


@router.get("/app.js")
async def read_script() -> Response:
    """The page's script."""
    return _file("app.js")


@router.get("/style.css")
async def read_style() -> Response:
    """The page's style sheet."""
    return _file("style.css")


@router.get("/icon.svg")
async def read_icon() -> Response:
    """The page's icon (without one, browsers ask for ``/favicon.ico`` and log its 404)."""
    return _file("icon.svg")


__all__ = ["SECURITY_HEADERS", "page_file", "router"]

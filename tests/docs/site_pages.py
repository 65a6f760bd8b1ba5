"""What counts as a page of the built site."""

from __future__ import annotations

from urllib.parse import urlsplit


def is_page(url: str, site_url: str) -> bool:
    """An HTML page of the site (not an asset, not another host)."""
    path = urlsplit(url).path
    return url.startswith(site_url) and (path.endswith("/") or path.endswith(".html"))

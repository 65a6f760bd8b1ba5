"""The documentation site, built strictly, served on loopback and walked in headless chromium."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

import pytest
from site_pages import is_page

from headless_browser import HeadlessBrowser, PageVisit

ROOT = Path(__file__).resolve().parents[2]

# Evaluated in every page once it has loaded: what the tests look at.
PAGE_SCRIPT = """JSON.stringify({
  title: document.title,
  h1: (document.querySelector("article h1") || {}).textContent || null,
  article_text: (document.querySelector("article") || {}).innerText || "",
  links: [...document.querySelectorAll("a[href]")].map(a => a.href),
  ids: [...document.querySelectorAll("[id]")].map(e => e.id),
  code_blocks: [...document.querySelectorAll("article pre > code")].map(c => c.textContent),
  tables: document.querySelectorAll("article table").length,
  doc_objects: [...document.querySelectorAll("article .doc-heading")].map(h => h.textContent),
})"""


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mkdocs build --strict`` of this checkout into a temporary directory."""
    site = tmp_path_factory.mktemp("docs") / "site"
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def site_url(built_site: Path) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1, on a port the OS chose."""
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def visited_pages(browser: HeadlessBrowser, site_url: str) -> dict[str, PageVisit]:
    """Every page reachable from the home page by its links, each loaded in the browser."""
    visits: dict[str, PageVisit] = {}
    queue = [site_url]
    while queue:
        url = queue.pop(0)
        if url in visits:
            continue
        visits[url] = visit = browser.visit(url, PAGE_SCRIPT)
        for link in visit.data["links"]:
            target = urldefrag(urljoin(url, link)).url
            if is_page(target, site_url) and target not in visits:
                queue.append(target)
    return visits

"""The documentation site in a real browser: every page loads, links hold, content is there."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

from site_pages import is_page

from anomaly_api.config import Settings, env_names
from headless_browser import PageVisit

# Pages whose point is their commands or examples: at least this many code blocks each.
MIN_CODE_BLOCKS = {
    "": 1,
    "quick-start/": 3,
    "api/": 2,
    "configuration/": 0,
    "model/": 1,
    "artifacts/": 1,
    "deployment/": 2,
    "operations/": 5,
    "performance/": 1,
}


def page(visited: dict[str, PageVisit], site_url: str, path: str) -> PageVisit:
    return visited[site_url + path]


def test_every_built_page_is_reachable_and_loads(
    visited_pages: dict[str, PageVisit], site_url: str, built_site: Path
) -> None:
    built = {
        site_url + str(p.relative_to(built_site).parent).replace(".", "") + "/"
        for p in built_site.rglob("index.html")
    }
    built = {u.replace("//", "/").replace("http:/", "http://") for u in built}
    assert built - set(visited_pages) == set(), "pages that no link reaches"
    for url, visit in visited_pages.items():
        assert visit.status == 200, url
        assert visit.errors == [], (url, visit.errors)
        assert visit.data["h1"], f"{url} has no heading"
        assert len(visit.data["article_text"]) > 100, f"{url} is (nearly) empty"
        assert visit.data["title"].endswith("anomaly-api"), url


def test_no_broken_internal_links(visited_pages: dict[str, PageVisit], site_url: str) -> None:
    ids = {url: set(v.data["ids"]) for url, v in visited_pages.items()}
    broken = []
    checked = 0
    for url, visit in visited_pages.items():
        for link in visit.data["links"]:
            target, fragment = urldefrag(urljoin(url, link))
            if not target.startswith(site_url):
                continue
            checked += 1
            if is_page(target, site_url):
                if target not in ids:
                    broken.append((url, link, "no such page"))
                elif fragment and fragment not in ids[target]:
                    broken.append((url, link, "no such anchor"))
            else:
                try:
                    with urllib.request.urlopen(target, timeout=10) as answer:
                        assert answer.status == 200
                except urllib.error.HTTPError as exc:
                    broken.append((url, link, exc.code))
    assert checked > 100, "the crawl found suspiciously few internal links"
    assert broken == []


def test_pages_ask_no_outside_host(visited_pages: dict[str, PageVisit], site_url: str) -> None:
    for url, visit in visited_pages.items():
        outside = [r for r in visit.requested if not r.startswith((site_url, "data:", "blob:"))]
        assert outside == [], (url, outside)


def test_code_blocks_are_where_expected(visited_pages: dict[str, PageVisit], site_url: str) -> None:
    for path, minimum in MIN_CODE_BLOCKS.items():
        blocks = page(visited_pages, site_url, path).data["code_blocks"]
        assert len(blocks) >= minimum, (path, len(blocks))
    api = "\n".join(page(visited_pages, site_url, "api/").data["code_blocks"])
    assert "curl -X POST http://localhost:8000/predict/batch" in api
    assert '"is_anomaly": true' in api
    quick = "\n".join(page(visited_pages, site_url, "quick-start/").data["code_blocks"])
    assert "make run" in quick
    assert "make test" in quick


def test_configuration_page_lists_every_setting(
    visited_pages: dict[str, PageVisit], site_url: str
) -> None:
    text = page(visited_pages, site_url, "configuration/").data["article_text"]
    rows = {line.split("\t")[0]: line for line in text.splitlines() if "\t" in line}
    for field, info in Settings.model_fields.items():
        assert field in rows, f"{field} is missing from the settings table"
        for name in env_names(field):
            assert name in rows[field]
        assert info.description
        assert re.sub(r"`", "", info.description) in rows[field]


def test_code_reference_is_generated_from_the_docstrings(
    visited_pages: dict[str, PageVisit], site_url: str
) -> None:
    detection = page(visited_pages, site_url, "reference/detection/").data["doc_objects"]
    assert any("AnomalyEnsemble" in heading for heading in detection)
    config = page(visited_pages, site_url, "reference/config/")
    assert any("get_settings" in heading for heading in config.data["doc_objects"])
    assert "Build the settings once" in config.data["article_text"]
    for path in ("data", "training", "artifacts", "service", "api", "cli"):
        headings = page(visited_pages, site_url, f"reference/{path}/").data["doc_objects"]
        assert len(headings) >= 3, (path, headings)
    assert urlsplit(site_url).hostname == "127.0.0.1"

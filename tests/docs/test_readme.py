"""The README is a short front page whose links lead into the docs and hold."""

from __future__ import annotations

import re
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def heading_anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in headings}


def test_readme_is_a_short_front_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make run" in text
    assert "make test" in text
    assert "curl -X POST http://localhost:8000/predict" in text


def test_readme_links_reach_existing_pages_and_anchors() -> None:
    links = [link for link in LINK.findall(README.read_text()) if "://" not in link]
    assert len(links) >= 10
    for link in links:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), link
        if anchor:
            assert anchor in heading_anchors(target), link


def test_every_docs_page_is_in_the_nav_or_reserved() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    missing = {p for p in pages if p not in nav}
    assert not missing


def test_the_docs_home_page_links_every_page() -> None:
    docs = ROOT / "docs"
    linked = {
        (docs / link.partition("#")[0]).resolve()
        for link in LINK.findall((docs / "index.md").read_text())
        if "://" not in link
    }
    pages = {p.resolve() for p in docs.rglob("*.md")} - {(docs / "index.md").resolve()}
    assert not pages - linked, sorted(str(p.relative_to(docs)) for p in pages - linked)

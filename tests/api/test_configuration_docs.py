"""Every setting is documented: in `.env.example` (which parses to the defaults) and the docs.

The docs' settings table is generated from `Settings` when the site is built; its rendered
page is checked in `tests/docs/test_site.py`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from anomaly_api.config import Settings

ROOT = Path(__file__).resolve().parents[2]
FIELDS = sorted(Settings.model_fields)


def env_name(field: str) -> str:
    return f"ANOMALY_{field.upper()}"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ANOMALY_") or name == "REDIS_URL":
            monkeypatch.delenv(name)


def test_env_example_lists_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^(?:# )?(ANOMALY_[A-Z0-9_]+)=", text, flags=re.MULTILINE))
    missing = {env_name(f) for f in FIELDS} - listed
    assert not missing, f"add {sorted(missing)} to .env.example"
    unknown = listed - {env_name(f) for f in FIELDS}
    assert not unknown, f".env.example names settings that do not exist: {sorted(unknown)}"


@pytest.mark.usefixtures("clean_environment")
def test_env_example_parses_to_the_defaults() -> None:
    from_example = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()


def test_every_setting_has_a_description_for_the_docs_table() -> None:
    missing = [f for f in FIELDS if not Settings.model_fields[f].description]
    assert not missing, f"give {missing} a Field(description=...): the docs table is built from it"


def test_configuration_page_has_the_generated_table_marker() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert re.search(r"^<!-- settings-table:.*-->$", page, flags=re.MULTILINE)
    assert "| `cache_ttl_s` |" not in page, "the table is generated: do not write it by hand"

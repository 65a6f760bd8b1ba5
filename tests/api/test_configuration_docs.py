"""Every setting is documented: in `.env.example` (which parses to the defaults) and the README."""

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


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([a-z0-9_]+)` \| `(ANOMALY_[A-Z0-9_]+)`", section, re.MULTILINE))
    missing = [f for f in FIELDS if (f, env_name(f)) not in rows]
    assert not missing, f"add {missing} to the README's Configuration table"

"""MkDocs hook: the Configuration page's settings table, generated from ``Settings``.

The table is built at every ``mkdocs build`` from ``anomaly_api.config.Settings.model_fields``
(name, environment variables, default, what is allowed, description), so it cannot drift from
the code. It replaces the marker line ``<!-- settings-table: ... -->`` in a page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from anomaly_api.config import Settings, allowed_values, env_names

MARKER = re.compile(r"^<!-- settings-table:.*?-->$", flags=re.MULTILINE | re.DOTALL)


def _default(field: str) -> str:
    info = Settings.model_fields[field]
    value: Any = info.default
    if value is PydanticUndefined and info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    if value is None:
        return "(unset)"
    if value == []:
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    """Every setting as one Markdown table row, in the order ``Settings`` declares them."""
    rows = [
        "| Setting | Environment variable | Default | Allowed | Meaning |",
        "|---|---|---|---|---|",
    ]
    for field, info in Settings.model_fields.items():
        if not info.description:
            raise ValueError(f"Settings.{field} has no description: the docs need one")
        env = " or ".join(f"`{name}`" for name in env_names(field))
        rows.append(
            f"| `{field}` | {env} | {_default(field)} | {_cell(allowed_values(field))} "
            f"| {_cell(info.description)} |"
        )
    return "\n".join(rows) + "\n"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs event: put the generated table where the page has the marker."""
    return MARKER.sub(lambda _match: settings_table(), markdown)

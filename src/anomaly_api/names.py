"""The rule every model name follows, apart from the registry (which imports the model
code) so that a command can check names before it imports any model code."""

from __future__ import annotations

import re

__all__ = ["MODEL_NAME", "validate_model_name"]

MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
"""A model name (used with ``fullmatch``); ``.`` and ``..`` are refused besides."""


def validate_model_name(name: str) -> str:
    """``name`` unchanged, or ``ValueError``: 1-63 of ``a-z 0-9 _ . -``, starting with a
    letter or digit, and never ``.``/``..`` or anything with a path separator."""
    if not isinstance(name, str) or MODEL_NAME.fullmatch(name) is None or name in {".", ".."}:
        raise ValueError(
            f"invalid model name {str(name)[:80]!r}: use 1-63 of a-z, 0-9, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return name

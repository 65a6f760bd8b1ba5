"""A fake monotonic clock for the in-memory stream store (a uniquely named helper module:
``conftest`` is ambiguous across test packages)."""

from __future__ import annotations


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

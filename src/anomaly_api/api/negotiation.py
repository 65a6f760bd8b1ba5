"""Content negotiation: which of a route's media types an ``Accept`` header asks for.

Hand-written (about 30 lines): Starlette parses no ``Accept`` header, and the one rule the
routes need does not justify a dependency. RFC 9110 section 12.5.1: each offered type
takes the ``q`` of the most specific range that matches it (``type/subtype``, then
``type/*``, then ``*/*``); the highest ``q`` wins; on a tie a type named exactly wins over
one matched by a wildcard, then the route's first offer (its default).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["negotiate"]


def _ranges(accept: str) -> list[tuple[str, float]]:
    """``(media range, q)`` of every range of the header (a malformed ``q`` counts as 0)."""
    ranges = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if media:
            ranges.append((media.lower(), q))
    return ranges


def negotiate(accept: str | None, offers: Sequence[str]) -> str | None:
    """The offer ``accept`` prefers (the first offer when there is no header), or None
    when it allows none of them."""
    if accept is None or not accept.strip():
        return offers[0]
    ranges = _ranges(accept)
    best: tuple[float, int, int] | None = None
    chosen = None
    for position, offer in enumerate(offers):
        kind = offer.split("/", 1)[0]
        matched: tuple[int, float] | None = None  # (specificity, q) of the best match
        for media, q in ranges:
            specificity = {offer: 2, f"{kind}/*": 1, "*/*": 0}.get(media)
            if specificity is not None and (matched is None or specificity > matched[0]):
                matched = (specificity, q)
        if matched is None or matched[1] <= 0.0:
            continue
        rank = (matched[1], int(matched[0] == 2), -position)
        if best is None or rank > best:
            best, chosen = rank, offer
    return chosen

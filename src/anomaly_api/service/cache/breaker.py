"""A circuit breaker, so a dead Redis costs one comparison per request instead of a timeout.

closed --(``failure_threshold`` consecutive failures)--> open --(``cooldown_s``)--> half_open
half_open lets exactly one trial call through: success closes, failure re-opens.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from anomaly_api.service.cache.base import BreakerState


class CircuitBreaker:
    """Counts consecutive failures and decides whether the next call may go through.

    Not thread-safe; used from one event loop, where no method awaits.
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self.opened_total = 0  # how many times the breaker tripped

    @property
    def state(self) -> BreakerState:
        """Current state; ``open`` turns into ``half_open`` only when a call asks to go."""
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the backend now (claims the trial slot when half-open)."""
        if self._state == "closed":
            return True
        if self._state == "open":
            if self._clock() - self._opened_at < self.cooldown_s:
                return False
            self._state = "half_open"
        if self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def record_success(self) -> bool:
        """A call succeeded; returns True when this closed an open or half-open breaker."""
        recovered = self._state != "closed"
        self._state = "closed"
        self._failures = 0
        self._trial_in_flight = False
        return recovered

    def record_failure(self) -> bool:
        """A call failed; returns True when this opened the breaker."""
        self._failures += 1
        if self._state == "half_open" or self._failures >= self.failure_threshold:
            return self.trip()
        return False

    def trip(self) -> bool:
        """Open now (e.g. the health probe failed); returns True when it was not open."""
        tripped = self._state != "open"
        self._state = "open"
        self._opened_at = self._clock()
        self._trial_in_flight = False
        if tripped:
            self.opened_total += 1
        return tripped

    def release(self) -> None:
        """A call was abandoned without a verdict (cancelled): free the trial slot."""
        self._trial_in_flight = False

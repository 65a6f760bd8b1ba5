"""The circuit breaker's state machine, driven by a settable clock."""

from __future__ import annotations

import pytest

from anomaly_api.service.cache import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, cooldown_s=5.0, clock=clock)


def test_opens_after_consecutive_failures_only(breaker: CircuitBreaker) -> None:
    assert not breaker.record_failure()
    assert not breaker.record_failure()
    breaker.record_success()  # resets the run of failures
    assert not breaker.record_failure()
    assert not breaker.record_failure()
    assert breaker.state == "closed"
    assert breaker.allow()
    assert breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.opened_total == 1


def test_one_trial_after_cooldown_then_closes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    breaker.trip()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()  # the trial call
    assert breaker.state == "half_open"
    assert not breaker.allow()  # everyone else still skips
    assert breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_failed_trial_reopens_for_a_new_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    breaker.trip()
    clock.now += 5.0
    assert breaker.allow()
    assert breaker.record_failure()  # one failure is enough when half-open
    assert breaker.state == "open"
    clock.now += 4.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()
    assert breaker.opened_total == 2


def test_released_trial_lets_the_next_caller_try(breaker: CircuitBreaker, clock: FakeClock) -> None:
    breaker.trip()
    clock.now += 5.0
    assert breaker.allow()
    breaker.release()  # the trial was cancelled: no verdict
    assert breaker.state == "half_open"
    assert breaker.allow()


def test_threshold_must_be_positive(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(failure_threshold=0, cooldown_s=1.0, clock=clock)

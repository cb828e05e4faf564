"""Retries: transient failures retried with backoff within the budget; terminal ones never."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from consumer.contract.errors import StripeFailure
from consumer.stripe.retry import Attempts, RetryPolicy, with_retries
from tests.unit.fakes import failure


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(failures: list[StripeFailure]) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    return call


async def test_retries_until_success_with_growing_delays() -> None:
    """Exponential backoff: each delay within [ceiling/2, ceiling]."""
    time = FakeTime()
    policy = RetryPolicy(
        budget_seconds=100, base_delay_seconds=1, max_delay_seconds=8, random=lambda: 1.0
    )
    attempts = Attempts()
    result = await with_retries(
        flaky([failure("api_error", retryable=True)] * 4),
        policy,
        attempts,
        clock=time.clock,
        sleep=time.sleep,
    )
    assert result == "ok"
    assert attempts.count == 5
    assert time.sleeps == [1, 2, 4, 8]


def test_jitter_stays_within_half_and_full_ceiling() -> None:
    """Jitter never goes below half the ceiling."""
    low = RetryPolicy(base_delay_seconds=1, random=lambda: 0.0)
    assert [low.delay(n, None) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_server_hint_is_honoured() -> None:
    """A Retry-After hint longer than the backoff wins."""
    assert RetryPolicy(base_delay_seconds=0.1, random=lambda: 1.0).delay(1, 3.0) == 3.0


async def test_terminal_failure_is_not_retried() -> None:
    """A decline is raised at once."""
    attempts = Attempts()
    with pytest.raises(StripeFailure):
        await with_retries(flaky([failure("card_error", retryable=False)]), RetryPolicy(), attempts)
    assert attempts.count == 1


async def test_budget_stops_retrying() -> None:
    """When the next wait would pass the budget, the last failure is raised."""
    time = FakeTime()
    policy = RetryPolicy(
        budget_seconds=5, base_delay_seconds=1, max_delay_seconds=8, random=lambda: 1.0
    )
    attempts = Attempts()
    with pytest.raises(StripeFailure):
        await with_retries(
            flaky([failure("api_error", retryable=True)] * 10),
            policy,
            attempts,
            clock=time.clock,
            sleep=time.sleep,
        )
    assert time.sleeps == [1, 2]  # 1 + 2 + 4 > 5
    assert attempts.count == 3

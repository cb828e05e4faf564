"""Retrying transient Stripe failures: exponential backoff with full jitter, in a time budget.

Every attempt reuses the same idempotency key (the caller's closure holds it), so a retry of a
call that did reach Stripe is answered from Stripe's idempotency layer, never executed twice.
Only failures marked retryable are retried; a card decline or a validation error never is.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from consumer.contract.errors import StripeFailure

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    budget_seconds: float = 30.0
    base_delay_seconds: float = 0.25
    max_delay_seconds: float = 8.0
    random: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int, hint: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * 2.0 ** (attempt - 1))
        jittered = ceiling * (0.5 + 0.5 * float(self.random()))
        return max(jittered, hint or 0.0)


@dataclass(slots=True)
class Attempts:
    """How many calls a request made, and the time they spent at Stripe (for the log line)."""

    count: int = 0
    stripe_seconds: float = 0.0


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    attempts: Attempts,
    *,
    on_retry: Callable[[StripeFailure], None] = lambda _: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``call`` until it succeeds, fails terminally, or the budget would be exceeded.

    ``attempts.count`` is updated as it goes, so the caller knows it even when this raises.
    """
    started = clock()
    while True:
        attempts.count += 1
        try:
            return await call()
        except StripeFailure as failure:
            if not failure.retryable:
                raise
            delay = policy.delay(attempts.count, failure.retry_after)
            if clock() - started + delay > policy.budget_seconds:
                raise
            on_retry(failure)
            await sleep(delay)

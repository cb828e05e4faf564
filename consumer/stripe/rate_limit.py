"""Staying inside Stripe's rate limits, per credential.

Stripe allows 100 operations/s per live account and 25/s in test mode, and answers more with
429. The limiter admits a call only while, over the last rolling second, fewer than ``limit``
calls started; and over the last ``burst / limit`` seconds fewer than ``burst``. So bursts
stay small, and no calendar second (which is what Stripe counts) ever sees more than
``limit`` calls. Callers wait in arrival order.

After a 429 the limit halves for a cool-down, then recovers step by step: a neighbour sharing
the account (another service, the dashboard) may be using part of the budget.

This limiter counts this process's calls only. Replicas of the group share one limit through
Redis (``shared_rate_limit.py``, the same rules in one Lua script); without Redis each
replica keeps to its share, the limit divided by the replica count (:func:`share_of`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

WINDOW_SECONDS: Final = 1.0
COOLDOWN_SECONDS: Final = 5.0
_MIN_LIMIT: Final = 1


class RateLimit(Protocol):
    """What the executor needs of a limiter: wait for a slot; hear about a 429."""

    async def acquire(self) -> float: ...

    def slow_down(self) -> None: ...


class RateLimiter:
    def __init__(
        self,
        limit: int,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.configured_limit = limit
        self._limit = limit
        self._burst = max(1, min(limit, burst if burst is not None else default_burst(limit)))
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep
        self._recover_at = 0.0
        self._slowed_at = float("-inf")

    @property
    def limit(self) -> int:
        """The limit in force now (lower than configured while cooling down after a 429)."""
        self._recover(self._clock())
        return self._limit

    async def acquire(self) -> float:
        """Wait for a slot; return how long the caller waited, in seconds."""
        started = self._clock()
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._wait_needed(now)
                if wait <= 0:
                    self._starts.append(now)
                    return now - started
                await self._sleep(wait)

    def slow_down(self) -> None:
        """Stripe said 429: halve the limit for a while. Concurrent calls that were refused
        together are one signal, not many: the limit halves at most once per window."""
        now = self._clock()
        if now - self._slowed_at < WINDOW_SECONDS:
            return
        self._slowed_at = now
        self._limit = max(_MIN_LIMIT, self._limit // 2)
        self._recover_at = now + COOLDOWN_SECONDS

    def _recover(self, now: float) -> None:
        while self._limit < self.configured_limit and now >= self._recover_at:
            step = max(1, self.configured_limit // 10)
            self._limit = min(self.configured_limit, self._limit + step)
            self._recover_at += COOLDOWN_SECONDS / 5

    def _wait_needed(self, now: float) -> float:
        self._recover(now)
        starts = self._starts
        while starts and starts[0] <= now - WINDOW_SECONDS:
            starts.popleft()
        waits = [0.0]
        if len(starts) >= self._limit:
            waits.append(starts[-self._limit] + WINDOW_SECONDS - now)
        burst = min(self._burst, self._limit)
        burst_window = WINDOW_SECONDS * burst / self._limit
        if len(starts) >= burst:
            waits.append(starts[-burst] + burst_window - now)
        return max(waits)


def default_burst(limit: int) -> int:
    """Calls that may start at once when not configured: a tenth of the limit."""
    return max(1, limit // 10)


def share_of(limit: int, replicas: int) -> int:
    """One replica's part of a limit the group shares (never below one call a second)."""
    return max(_MIN_LIMIT, limit // replicas)


def default_rate_limit(live_mode: bool) -> int:
    """Stripe's published limits: 100 operations/s live, 25/s in test mode."""
    return 100 if live_mode else 25

"""The limiter: never more than `limit` calls in any rolling second, small bursts, slower
after a 429, recovering afterwards."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.stripe.rate_limit import RateLimiter, default_rate_limit


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def most_in_window(starts: list[float], window: float) -> int:
    return max(sum(1 for t in starts if s <= t < s + window) for s in starts)


async def run_calls(
    limiter: RateLimiter, time: FakeTime, count: int, gaps: list[float] | None = None
) -> list[float]:
    starts = []
    for i in range(count):
        if gaps:
            time.now += gaps[i % len(gaps)]
        await limiter.acquire()
        starts.append(time.now)
    return starts


async def test_never_more_than_the_limit_in_any_second() -> None:
    """A flood of calls is spread so no rolling second holds more than the limit."""
    time = FakeTime()
    limiter = RateLimiter(50, clock=time.clock, sleep=time.sleep)
    starts = await run_calls(limiter, time, 500)
    assert most_in_window(starts, 1.0) == 50
    assert starts[-1] >= 9.0  # 500 calls at 50/s take about ten seconds


@settings(max_examples=30, deadline=None)
@given(
    limit=st.integers(1, 120),
    burst=st.integers(1, 40),
    gaps=st.lists(st.floats(0, 0.2), min_size=1, max_size=20),
)
def test_limit_and_burst_hold_for_any_arrival_pattern(
    limit: int, burst: int, gaps: list[float]
) -> None:
    """Whatever the arrival pattern, both the rate and the burst bound hold."""
    time = FakeTime()
    limiter = RateLimiter(limit, burst, clock=time.clock, sleep=time.sleep)
    starts = asyncio.run(run_calls(limiter, time, 3 * limit, gaps))
    effective_burst = min(burst, limit)
    assert most_in_window(starts, 1.0) <= limit
    assert most_in_window(starts, effective_burst / limit * 0.999) <= effective_burst


async def test_bursts_are_small() -> None:
    """From idle, only `burst` calls go at once; the rest are spaced."""
    time = FakeTime()
    limiter = RateLimiter(100, 10, clock=time.clock, sleep=time.sleep)
    starts = await run_calls(limiter, time, 30)
    assert starts[:10] == [0.0] * 10
    assert starts[10] > 0.0


async def test_slow_down_halves_then_recovers() -> None:
    """After a 429 the limit halves; it climbs back to the configured limit."""
    time = FakeTime()
    limiter = RateLimiter(40, clock=time.clock, sleep=time.sleep)
    limiter.slow_down()
    assert limiter.limit == 20
    starts = await run_calls(limiter, time, 60)
    assert most_in_window([s for s in starts if s < 4], 1.0) <= 20
    time.now += 30
    assert limiter.limit == 40


def test_a_burst_of_429s_halves_the_limit_once() -> None:
    """Twenty calls refused together are one congestion signal."""
    time = FakeTime()
    limiter = RateLimiter(100, clock=time.clock, sleep=time.sleep)
    for _ in range(20):
        limiter.slow_down()
    assert limiter.limit == 50
    time.now += 1.0
    limiter.slow_down()
    assert limiter.limit == 25


async def test_waiters_are_served_in_arrival_order() -> None:
    """Concurrent callers get slots first come, first served."""
    limiter = RateLimiter(1000, 1)
    order: list[int] = []

    async def call(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    await asyncio.gather(*(call(i) for i in range(20)))
    assert order == list(range(20))


def test_default_limits_are_stripes() -> None:
    """100/s for live keys, 25/s for test keys."""
    assert (default_rate_limit(True), default_rate_limit(False)) == (100, 25)

"""The group's rate limit in real Redis: two limiters (two replicas) share one limit, a 429
slows the whole group, and without Redis each keeps to its share instead of stalling. (That
Stripe never sees more than the limit in one of its seconds is measured where Stripe counts,
at the stand-in: tests/fault/test_shared_rate_limit.py.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from consumer.observability.metrics import ServiceMetrics
from consumer.shared_state.redis_client import RedisConnection
from consumer.stripe.rate_limit import WINDOW_SECONDS
from consumer.stripe.shared_rate_limit import SAFETY_MARGIN_SECONDS, SharedRateLimiter
from tests.support.process import free_port

WINDOW = WINDOW_SECONDS + SAFETY_MARGIN_SECONDS  # the shared limiter's window
Replica = Callable[..., SharedRateLimiter]  # (redis url) -> a replica's limiter


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest_asyncio.fixture
async def replica(stack: dict[str, str], registry: CollectorRegistry) -> AsyncIterator[Replica]:
    """Makes limiters as separate replicas would have them: each its own connection, all on
    one key prefix private to this test (and, for the test to read, one metrics registry)."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    metrics = ServiceMetrics(registry)
    async with AsyncExitStack() as cleanup:

        def make(url: str = stack["REDIS_URL"]) -> SharedRateLimiter:
            connection = RedisConnection(url, metrics, prefix=prefix)
            cleanup.push_async_callback(connection.close)
            return SharedRateLimiter(
                connection,
                integration="default",
                limit=20,
                burst=2,
                replicas=2,
                owner=uuid.uuid4().hex,
            )

        yield make


async def admit(limiter: SharedRateLimiter, count: int) -> None:
    for _ in range(count):
        await limiter.acquire()


async def span_of(*admissions: Awaitable[None]) -> float:
    """Seconds until every admission is through. A lower bound on it is what a limit
    implies; a busy machine only lengthens it (times taken in this process after each
    admission would bunch when the loop stalls, so the tests do not count those)."""
    began = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*admissions), timeout=30)
    return time.monotonic() - began


async def test_two_replicas_share_one_limit(replica: Replica) -> None:
    """Under a shared 20/s limit two replicas flooding calls take as long as 20/s allows
    (70 calls: the 70th at least three windows after the first), where each keeping its
    own 20/s would be through in under two seconds."""
    assert await span_of(admit(replica(), 35), admit(replica(), 35)) >= 3 * WINDOW


async def test_a_429_slows_every_replica(replica: Replica) -> None:
    """A 429 heard by one replica halves the limit the other gets: 25 calls at 10/s take two
    windows (at 20/s, one)."""
    heard, other = replica(), replica()
    await heard.slow_down_group()  # what slow_down() sends to Redis after a 429
    assert await span_of(admit(other, 25)) >= 2 * WINDOW


async def test_without_redis_each_replica_keeps_to_its_share(
    replica: Replica, registry: CollectorRegistry
) -> None:
    """Redis unreachable: calls neither stall nor ignore the limit; each replica keeps to
    limit / replicas (20 / 2), and the metrics say Redis is unavailable."""
    limiter = replica(f"redis://127.0.0.1:{free_port()}/0")
    assert await span_of(admit(limiter, 25)) >= 2.0  # 25 at 10/s; never stalled (30 s bound)
    assert registry.get_sample_value("stripe_consumer_redis_unavailable") == 1
    errors = registry.get_sample_value("stripe_consumer_redis_errors_total", {"use": "rate_limit"})
    assert errors is not None
    assert errors >= 1

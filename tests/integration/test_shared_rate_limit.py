"""The group's rate limit in real Redis: two limiters (two replicas) share one limit, a 429
slows the whole group, and without Redis each keeps to its share instead of stalling."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from consumer.metrics import ServiceMetrics
from consumer.shared_state.rate_limit import SharedRateLimiter
from consumer.shared_state.redis_client import RedisConnection
from tests.support.process import free_port

Replica = Callable[..., SharedRateLimiter]  # (redis url) -> a replica's limiter


def most_in_window(starts: list[float], window: float) -> int:
    return max(sum(1 for t in starts if s <= t < s + window) for s in starts)


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


async def admit(limiter: SharedRateLimiter, count: int, starts: list[float]) -> None:
    for _ in range(count):
        await limiter.acquire()
        starts.append(time.monotonic())


async def test_two_replicas_share_one_limit(replica: Replica) -> None:
    """Under a shared 20/s limit, two replicas flooding calls together never start more than
    20 in any second (each alone would allow 20: 40 together)."""
    first, second = replica(), replica()
    starts_a: list[float] = []
    starts_b: list[float] = []
    began = time.monotonic()
    await asyncio.gather(admit(first, 35, starts_a), admit(second, 35, starts_b))
    starts = sorted(starts_a + starts_b)
    assert most_in_window(starts, 1.0) <= 20
    assert starts[-1] - began >= 3.0  # 70 calls at 20/s: three full windows at least
    assert len(starts_a) == len(starts_b) == 35


async def test_a_429_slows_every_replica(replica: Replica) -> None:
    """A 429 heard by one replica halves the limit the other one gets too."""
    heard, other = replica(), replica()
    await heard.slow_down_group()  # what slow_down() sends to Redis after a 429
    starts: list[float] = []
    await admit(other, 25, starts)
    assert most_in_window(starts, 1.0) <= 10


async def test_without_redis_each_replica_keeps_to_its_share(
    replica: Replica, registry: CollectorRegistry
) -> None:
    """Redis unreachable: calls neither stall nor ignore the limit; each replica keeps to
    limit / replicas (20 / 2), and the metrics say Redis is unavailable."""
    limiter = replica(f"redis://127.0.0.1:{free_port()}/0")
    starts: list[float] = []
    await asyncio.wait_for(admit(limiter, 25, starts), timeout=10)
    assert most_in_window(starts, 1.0) <= 10
    assert starts[-1] - starts[0] >= 1.0  # spaced at 10/s, not let through at once
    assert registry.get_sample_value("stripe_consumer_redis_unavailable") == 1
    errors = registry.get_sample_value("stripe_consumer_redis_errors_total", {"use": "rate_limit"})
    assert errors is not None
    assert errors >= 1

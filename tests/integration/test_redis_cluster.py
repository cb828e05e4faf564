"""Shared state on a real three-primary Redis Cluster (the local stack's, the same
redis-server binary): the rate limit's two keys share a slot, remembered answers and delete
records are read across slots, the data marker is probed, and a batch of meter identifiers
reaches every primary. (The ledger's own behaviour on the cluster: test_ledger_layout.py.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from consumer.engine.replies import Outcome
from consumer.engine.reply_memory import AnswerKeys, RedisAnswers, RememberedAnswer, ReplyMemory
from consumer.metering.ledgers.ledger_layout import GROUPS
from consumer.metering.ledgers.protocol import ClaimState, LedgerScope
from consumer.metering.ledgers.redis import RedisIdentifierLedger
from consumer.observability.metrics import ServiceMetrics
from consumer.shared_state.redis_client import RedisConnection
from consumer.stripe.deletes import RedisDeleteRecords
from consumer.stripe.rate_limit import WINDOW_SECONDS
from consumer.stripe.retry import Attempts
from consumer.stripe.shared_rate_limit import SAFETY_MARGIN_SECONDS, SharedRateLimiter

pytestmark = pytest.mark.integration
Connect = Callable[..., RedisConnection]
DONE = Outcome.completed(msgspec.Raw(b'{"id":"ch_1","object":"charge"}'), "req_1", Attempts(1))


@pytest_asyncio.fixture
async def connect(redis_cluster_url: str) -> AsyncIterator[Connect]:
    """Cluster connections as separate replicas hold them, on a prefix private to this test."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    opened: list[RedisConnection] = []

    def make(metrics: ServiceMetrics | None = None) -> RedisConnection:
        metrics = metrics or ServiceMetrics(CollectorRegistry())
        connection = RedisConnection(redis_cluster_url, metrics, prefix=prefix, cluster=True)
        opened.append(connection)
        return connection

    yield make
    for connection in opened:
        await connection.close()


async def test_two_replicas_share_one_rate_limit_on_the_cluster(connect: Connect) -> None:
    """Two replicas flooding 70 calls under a shared 20/s limit take three windows at least
    (each keeping its own 20/s would be through in under two seconds), and Redis never
    failed (the fallback, each replica at its share, would be as slow)."""
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)

    def limiter() -> SharedRateLimiter:
        return SharedRateLimiter(
            connect(metrics),
            integration="default",
            limit=20,
            burst=2,
            replicas=2,
            owner=uuid.uuid4().hex,
        )

    async def admit(one: SharedRateLimiter, count: int) -> None:
        for _ in range(count):
            await one.acquire()

    began = time.monotonic()
    await asyncio.wait_for(asyncio.gather(admit(limiter(), 35), admit(limiter(), 35)), 30)
    assert time.monotonic() - began >= 3 * (WINDOW_SECONDS + SAFETY_MARGIN_SECONDS)
    assert registry.get_sample_value("stripe_consumer_redis_unavailable") == 0


async def test_answers_remembered_on_one_replica_are_recalled_across_slots(
    connect: Connect,
) -> None:
    """A completion and a task's failure (keys on different slots) answer in another process."""
    keys = AnswerKeys.of("default", None, "wf:ref:h", "task-1")
    writer = ReplyMemory(10, 60, shared=RedisAnswers(connect()))
    await writer.remember(keys, "h", DONE)
    reader = ReplyMemory(10, 60, shared=RedisAnswers(connect()))
    assert await reader.recall(AnswerKeys.of("default", None, "wf:ref:h", "task-2"), "h") == DONE
    many = [f"completed:other-{i}" for i in range(50)]
    assert await RedisAnswers(connect()).recall(many) == [None] * 50
    await RedisAnswers(connect()).remember(many[7], RememberedAnswer(DONE, "h"), 60)
    recalled = await RedisAnswers(connect()).recall(many)
    assert recalled[7] == RememberedAnswer(DONE, "h")
    assert recalled[:7] + recalled[8:] == [None] * 49


async def test_a_delete_recorded_by_one_replica_is_seen_by_another(connect: Connect) -> None:
    """mark_sent says whether any replica recorded the delete before; forget undoes it."""
    first, second = RedisDeleteRecords(connect()), RedisDeleteRecords(connect())
    assert await first.mark_sent("default:-:wf:del:h", 60) is False
    assert await second.mark_sent("default:-:wf:del:h", 60) is True
    await second.forget("default:-:wf:del:h")
    assert await first.mark_sent("default:-:wf:del:h", 60) is False


async def test_the_health_probe_answers_on_the_cluster(connect: Connect) -> None:
    """The data-marker probe runs on the cluster and the connection stays available."""
    connection = connect()
    assert await connection.check()
    assert await connection.check()
    assert connection.available


async def test_a_batch_of_identifiers_lands_on_every_primary(connect: Connect) -> None:
    """The ledger's groups spread one account's identifiers over all three primaries, and a
    batch that spans them claims once: a second replica sees them delivered."""
    connection = connect()
    one = RedisIdentifierLedger(connection, window_seconds=3_600, lease_seconds=30, owner="one")
    two = RedisIdentifierLedger(connect(), window_seconds=3_600, lease_seconds=30, owner="two")
    scope = LedgerScope("default", None)
    ids = [f"evt-{i}" for i in range(100)]
    assert await one.claim(scope, ids) == [ClaimState.CLAIMED] * 100
    await one.mark_delivered(scope, ids)
    assert await two.claim(scope, ids) == [ClaimState.DELIVERED] * 100
    where = connection.script("return redis.call('CLUSTER', 'MYID')")
    pending_keys = [
        f"{connection.prefix}meter:{{default:-:{group}}}:p:x" for group in range(GROUPS)
    ]
    nodes = {await connection.run(where, [key], [], use="t") for key in pending_keys}
    assert len(nodes) == 3

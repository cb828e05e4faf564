"""The Redis adapters against real Redis: what one replica remembers another recalls, the
ledger claims atomically, and the connection notices Redis losing its data."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from consumer.engine.replies import Outcome
from consumer.engine.reply_memory import AnswerKeys, RedisAnswers, RememberedAnswer, ReplyMemory
from consumer.metering.ledgers.protocol import ClaimState, LedgerScope
from consumer.metering.ledgers.redis import RedisIdentifierLedger
from consumer.observability.metrics import ServiceMetrics
from consumer.shared_state.redis_client import DATA_MARKER, RedisConnection, SharedStateUnavailable
from consumer.stripe.deletes import RedisDeleteRecords
from consumer.stripe.retry import Attempts
from tests.support.process import free_port
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration
Connect = Callable[..., RedisConnection]
DONE = Outcome.completed(msgspec.Raw(b'{"id":"ch_1","object":"charge"}'), "req_1", Attempts(1))


@pytest_asyncio.fixture
async def connect(stack: dict[str, str]) -> AsyncIterator[Connect]:
    """Connections as separate replicas hold them, on a key prefix private to this test."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    opened: list[RedisConnection] = []

    def make(
        url: str = stack["REDIS_URL"], registry: CollectorRegistry | None = None
    ) -> RedisConnection:
        metrics = ServiceMetrics(registry or CollectorRegistry())
        opened.append(RedisConnection(url, metrics, prefix=prefix))
        return opened[-1]

    yield make
    for connection in opened:
        await connection.close()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_one_replica_recalls_what_another_answered(connect: Connect) -> None:
    """A completion and a task's failure remembered by one process answer in another."""
    keys = AnswerKeys.of("default", None, "wf:ref:h", "task-1")
    writer = ReplyMemory(10, 60, shared=RedisAnswers(connect()))
    await writer.remember(keys, "h", DONE)
    reader = ReplyMemory(10, 60, shared=RedisAnswers(connect()))
    assert await reader.recall(AnswerKeys.of("default", None, "wf:ref:h", "task-2"), "h") == DONE
    assert await reader.recall(AnswerKeys.of("default", "acct_1", "wf:ref:h", None), "h") is None


async def test_remembered_answers_expire_in_redis(connect: Connect) -> None:
    """Redis keeps an answer for the memory's window, not forever."""
    answers = RedisAnswers(connect())
    await answers.remember("completed:x", RememberedAnswer(DONE, "h"), ttl_seconds=0.3)
    assert await answers.recall(["completed:x"]) == [RememberedAnswer(DONE, "h")]
    deadline = time.monotonic() + 5
    while await answers.recall(["completed:x"]) != [None]:
        assert time.monotonic() < deadline, "the answer never expired"
        await asyncio.sleep(0.05)


async def test_a_delete_recorded_by_one_replica_is_seen_by_another(connect: Connect) -> None:
    """mark_sent says whether any replica recorded the delete before; forget undoes it."""
    first, second = RedisDeleteRecords(connect()), RedisDeleteRecords(connect())
    assert await first.mark_sent("default:-:wf:del:h", 60) is False
    assert await second.mark_sent("default:-:wf:del:h", 60) is True
    await second.forget("default:-:wf:del:h")
    assert await first.mark_sent("default:-:wf:del:h", 60) is False


async def test_the_ledger_claims_once_across_replicas(connect: Connect) -> None:
    """Two replicas claim the same identifier: one gets it; once delivered, both see that."""
    scope = LedgerScope("default", None)
    one = RedisIdentifierLedger(connect(), window_seconds=60, lease_seconds=5, owner="one")
    two = RedisIdentifierLedger(connect(), window_seconds=60, lease_seconds=5, owner="two")
    assert await one.claim(scope, ["id-1"]) == [ClaimState.CLAIMED]
    assert await two.claim(scope, ["id-1"]) == [ClaimState.PENDING]
    await one.mark_delivered(scope, ["id-1"])
    assert await two.claim(scope, ["id-1"]) == [ClaimState.DELIVERED]


async def test_redis_coming_back_empty_is_noticed(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """The data marker gone (Redis restarted without its data) is counted and logged as an
    error by every replica that knew it; an unchanged marker is not."""
    registries = CollectorRegistry(), CollectorRegistry()
    watcher, other = (connect(registry=registry) for registry in registries)
    assert await watcher.check()
    assert await other.check()
    assert await watcher.check()
    assert sample(registries[0], "stripe_consumer_redis_data_lost_total") == 0
    # What Redis restarted without its data leaves: no marker.
    await watcher.delete(watcher.prefix + DATA_MARKER, use="health")
    with caplog.at_level(logging.ERROR, logger="stripe_consumer"):
        assert await watcher.check()
        assert await other.check()
    assert sample(registries[0], "stripe_consumer_redis_data_lost_total") == 1
    assert sample(registries[1], "stripe_consumer_redis_data_lost_total") == 1
    assert sum("Redis came back without its data" in r.message for r in caplog.records) == 2


async def test_an_unreachable_redis_fails_fast_and_says_so(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listening: calls raise SharedStateUnavailable at once (the next ones without
    even trying), the gauge is 1, and one warning says what degrades."""
    registry = CollectorRegistry()
    connection = connect(f"redis://127.0.0.1:{free_port()}/0", registry)
    ledger = RedisIdentifierLedger(connection, window_seconds=60, lease_seconds=5, owner="one")
    with caplog.at_level(logging.WARNING, logger="stripe_consumer"):
        for _ in range(3):
            with pytest.raises(SharedStateUnavailable):
                await ledger.claim(LedgerScope("default", None), ["id-1"])
    assert sample(registry, "stripe_consumer_redis_unavailable") == 1
    assert sample(registry, "stripe_consumer_redis_errors_total", use="meter_ledger") == 1
    assert not connection.available
    assert [r.message for r in caplog.records].count(
        "Redis unavailable: meter events wait for it; the rate limit falls back to this "
        "process's share; reply memory and delete records stay in this process"
    ) == 1
    assert await connection.check() is False


async def test_hundreds_of_calls_at_once_wait_for_a_connection(connect: Connect) -> None:
    """A busy process (hundreds of requests in flight, each asking Redis) is not refused by
    its own connection pool: no call fails, nothing is counted as Redis failing."""
    registry = CollectorRegistry()
    answers = RedisAnswers(connect(registry=registry))
    results = await asyncio.gather(*(answers.recall([f"completed:{i}"]) for i in range(400)))
    assert results == [[None]] * 400
    assert sample(registry, "stripe_consumer_redis_errors_total", use="reply_memory") == 0


async def test_a_callers_deadline_does_not_mark_redis_unavailable(tmp_path: Path) -> None:
    """A call that gives up at its own deadline (the rate limit waits at most 1 s) fails alone:
    Redis stays available to the ledger and the memories, no error is counted. (Marking it
    unavailable made the ledger fail fast, leave delivered identifiers pending, and a
    duplicate then sent them again.) A private redis-server: the script blocks it 0.3 s."""
    server = RedisServer(tmp_path / "redis").start()
    registry = CollectorRegistry()
    connection = RedisConnection(server.url, ServiceMetrics(registry), prefix="deadline:")
    slow = connection.script(
        """
        local start = redis.call('TIME')
        local began = start[1] * 1000000 + start[2]
        repeat
          local now = redis.call('TIME')
        until now[1] * 1000000 + now[2] - began > 300000
        return 1
        """
    )
    try:
        with pytest.raises(SharedStateUnavailable, match=r"within 0\.05 s"):
            await connection.run(slow, ["k"], [], use="rate_limit", timeout_seconds=0.05)
        assert connection.available
        assert sample(registry, "stripe_consumer_redis_errors_total", use="rate_limit") == 0
        await connection.put("deadline:after", b"1", ttl_seconds=60, use="meter_ledger")
    finally:
        await connection.close()
        server.close()

"""Redis availability, use by use, against a private redis-server: one slow or refused call
fails alone (the other uses go on), a paused or unreachable Redis is found and fails every
use fast, the first success ends that; and the reply memory rides out a blip, so what one
replica answered another finds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from consumer.engine.replies import Outcome
from consumer.engine.reply_memory import AnswerKeys, RedisAnswers, ReplyMemory
from consumer.observability.metrics import ServiceMetrics
from consumer.shared_state.redis_client import RedisConnection, SharedStateUnavailable
from consumer.stripe.retry import Attempts
from tests.support.redis_server import RedisServer, private_redis, redis_answers

pytestmark = pytest.mark.integration
DONE = Outcome.completed(msgspec.Raw(b'{"id":"ch_1","object":"charge"}'), "req_1", Attempts(1))
DONE = Outcome.completed(msgspec.Raw(b'{"id":"ch_1","object":"charge"}'), "req_1", Attempts(1))
BUSY_SCRIPT = """
local start = redis.call('TIME')
local began = start[1] * 1000000 + start[2]
repeat
  local now = redis.call('TIME')
until now[1] * 1000000 + now[2] - began > tonumber(ARGV[1])
return 1
"""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with private_redis(tmp_path / "redis") as server:
        yield server


@pytest_asyncio.fixture
async def registry() -> AsyncIterator[CollectorRegistry]:
    yield CollectorRegistry()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def pause(server: RedisServer, sig: signal.Signals) -> None:
    assert server.process is not None
    os.kill(server.process.pid, sig)


async def answering(server: RedisServer, timeout_s: float = 10) -> None:
    """Until the server answers PING (a busy script or a pause has ended)."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(redis_answers, server.port):
        assert time.monotonic() < deadline, "redis-server did not answer again"
        await asyncio.sleep(0.05)


async def test_a_slow_command_fails_alone_and_the_other_uses_go_on(
    server: RedisServer, registry: CollectorRegistry
) -> None:
    """A script that outlives the socket timeout fails that call only: Redis stays available
    (gauge 0), the error is counted for its use, and the next call of another use is made
    and answered. (It used to mark Redis unavailable for every use.)"""
    connection = RedisConnection(
        server.url,
        ServiceMetrics(registry),
        prefix="slow:",
        command_timeout_seconds=0.3,
        retry_after_seconds=3600,  # were the call to trip the breaker, nothing would pass
    )
    try:
        with pytest.raises(SharedStateUnavailable):
            await connection.run(connection.script(BUSY_SCRIPT), ["k"], [800_000], use="rate_limit")
        assert connection.available
        assert sample(registry, "stripe_consumer_redis_unavailable") == 0
        assert sample(registry, "stripe_consumer_redis_errors_total", use="rate_limit") == 1
        await answering(server)
        await connection.put("slow:after", b"1", ttl_seconds=60, use="reply_memory")
        assert await connection.get_many(["slow:after"], use="meter_ledger") == [b"1"]
    finally:
        await connection.close()


async def test_a_refused_command_fails_alone(
    server: RedisServer, registry: CollectorRegistry
) -> None:
    """Redis refusing a command (WRONGTYPE) says nothing of Redis being away: that call
    fails, the others go on, the gauge stays 0."""
    connection = RedisConnection(server.url, ServiceMetrics(registry), prefix="refused:")
    try:
        await connection.put("refused:s", b"x", ttl_seconds=60, use="delete_record")
        with pytest.raises(SharedStateUnavailable):
            await connection.hash_all("refused:s", use="meter_verdicts")
        assert connection.available
        assert sample(registry, "stripe_consumer_redis_unavailable") == 0
        await connection.put("refused:t", b"y", ttl_seconds=60, use="reply_memory")
    finally:
        await connection.close()


async def test_a_paused_redis_fails_every_use_fast_until_the_first_success(
    server: RedisServer, registry: CollectorRegistry
) -> None:
    """SIGSTOP: the health probe gets no answer, so Redis is unavailable for every use (calls
    fail at once, gauge 1); SIGCONT: the first call that succeeds ends it (gauge 0)."""
    clock = Clock()
    connection = RedisConnection(
        server.url, ServiceMetrics(registry), prefix="paused:", clock=clock
    )
    try:
        assert await connection.check()
        pause(server, signal.SIGSTOP)
        try:
            assert await connection.check() is False
            assert not connection.available
            assert sample(registry, "stripe_consumer_redis_unavailable") == 1
            started = time.monotonic()
            with pytest.raises(SharedStateUnavailable, match="failed recently"):
                await connection.put("paused:a", b"1", ttl_seconds=60, use="reply_memory")
            assert time.monotonic() - started < 1.0  # at once, not after a timeout
        finally:
            pause(server, signal.SIGCONT)
        await answering(server)
        clock.now += 1.0  # the breaker's second: the next call tries
        await connection.put("paused:a", b"1", ttl_seconds=60, use="reply_memory")
        assert connection.available
        assert sample(registry, "stripe_consumer_redis_unavailable") == 0
        assert await connection.get_many(["paused:a"], use="meter_ledger") == [b"1"]
    finally:
        await connection.close()


async def test_an_answer_written_while_redis_restarts_is_found_by_another_replica(
    server: RedisServer,
) -> None:
    """Redis restarting (refused for a moment) while a replica writes its COMPLETED: the write
    is retried until Redis answers, so another replica (its own connection and memory)
    recalls it. (The refused write used to leave the answer in the writer's process alone,
    and a copy redelivered after a SIGKILL ran again.)"""
    writer_connection = RedisConnection(
        server.url, ServiceMetrics(CollectorRegistry()), prefix="blip:"
    )
    reader_connection = RedisConnection(
        server.url, ServiceMetrics(CollectorRegistry()), prefix="blip:"
    )
    keys = AnswerKeys.of("default", None, "wf:charge:h", "task-1")
    try:
        writer = ReplyMemory(100, 60, shared=RedisAnswers(writer_connection))
        server.stop()
        writing = asyncio.create_task(writer.remember(keys, "h", DONE))
        await asyncio.to_thread(server.start)
        await writing
        reader = ReplyMemory(100, 60, shared=RedisAnswers(reader_connection))
        copy = AnswerKeys.of("default", None, "wf:charge:h", "task-1-copy")
        assert await reader.recall(copy, "h") == DONE
    finally:
        await writer_connection.close()
        await reader_connection.close()

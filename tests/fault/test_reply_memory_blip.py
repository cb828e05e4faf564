"""The hole test_kills_in_a_storm found at load, made deterministic: a replica answers a
charge COMPLETED while Redis is paused (a blip longer than its 2 s socket timeout) and is
SIGKILLed before the offset commits; the copy Kafka redelivers reaches another replica while
Stripe fails every call. That copy must be answered COMPLETED again (from the shared
memory), never FAILED. A private redis-server paused with SIGSTOP/SIGCONT."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tests.fault.conftest import Harness, charge_requests
from tests.support.redis_server import RedisServer, private_redis

PAUSED_SECONDS = 3.0  # past the 2 s socket timeout, within the reply memory's 5 s patience


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with private_redis(tmp_path / "redis") as server:
        yield server


async def paused(server: RedisServer, seconds: float) -> None:
    """SIGSTOP, then SIGCONT after ``seconds`` (the blip's length, not a wait for a result)."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


@pytest.mark.timeout(180)
async def test_a_copy_after_a_kill_that_followed_a_blip_is_answered_completed(
    harness: Harness, redis: RedisServer
) -> None:
    """COMPLETED during a blip, SIGKILL before the commit, the copy on the next replica in a
    storm of 503s: answered COMPLETED from memory with no Stripe call (it was answered FAILED:
    the first answer had stayed in the killed process)."""
    environ = {
        "CONSUMER_REDIS_URL": redis.url,
        "CONSUMER_RETRY_BUDGET_SECONDS": "2",
        # The offset stays uncommitted until the kill, so Kafka redelivers the record.
        "CONSUMER_COMMIT_INTERVAL_SECONDS": "60",
    }
    first = harness.service(**environ).start()
    charge = charge_requests(1, f"blip-{uuid.uuid4().hex[:6]}")
    (task,) = charge
    blip = asyncio.create_task(paused(redis, PAUSED_SECONDS))
    await asyncio.sleep(0.2)  # the pause has begun before the request arrives
    await harness.client.publish(charge[task], key=task)
    answered = await harness.client.replies(1, keys={task}, timeout_s=60)
    assert answered[task]["status"] == "COMPLETED"
    await blip
    first.kill()
    assert not await harness.all_committed(harness.topics.requests)

    await harness.configure(random_faults=[{"status": 503, "percent": 100}])
    calls_before = (await harness.stats())["calls"]
    harness.service(**environ).start()
    records = await harness.client.read(
        harness.topics.replies, 1, keys={task}, per_key=2, timeout_s=90
    )
    copy = msgspec.json.decode(records[-1].value or b"{}")
    assert [msgspec.json.decode(r.value or b"{}")["status"] for r in records] == [
        "COMPLETED",
        "COMPLETED",
    ]
    assert copy["deduplicated"] is True
    assert (await harness.stats())["calls"] == calls_before  # answered from memory

"""Redis, home of all shared state, fails under load: stopped for 30 s mid-run and started
again, then restarted empty (a failover without persistence). A private redis-server, never
the shared one.

What must hold: nothing lost; nothing executed twice within the windows the README promises
(an empty Redis forgets delivered identifiers: duplicates sent after it reach Stripe, whose
own 24-hour identifier dedup absorbs them); requests that need no Redis keep flowing while it
is away; meter events wait (bounded: their partitions pause) instead of going out unclaimed;
the metrics and the log say what is happening."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from consumer.kafka.producer import RecordSink
from consumer.kafka.records import OutboundRecord
from tests.fault.conftest import Harness, charge_requests
from tests.support.process import ServiceProcess
from tests.support.redis_server import RedisServer, private_redis

OUTAGE_SECONDS = 30.0


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with private_redis(tmp_path / "redis") as server:
        yield server


def meter_events(tag: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "operation": "create_meter_event",
            "event_name": "api_requests",
            "customer_id": f"cus_{i % 20:05d}",
            "identifier": f"{tag}-{i}",
        }
        for i in range(count)
    ]


async def publish(harness: Harness, requests: dict[str, dict[str, Any]]) -> None:
    for key, request in requests.items():
        await harness.client.publish(request, key=key)


async def publish_meter(harness: Harness, events: list[dict[str, Any]]) -> None:
    sink = RecordSink(harness.client.connection, linger_ms=20)
    await sink.start()
    try:
        await asyncio.gather(
            *(
                sink.send(
                    OutboundRecord(
                        harness.topics.meter, f"p{i % 7}".encode(), msgspec.json.encode(event)
                    )
                )
                for i, event in enumerate(events)
            )
        )
    finally:
        await sink.stop()


async def meter_deliveries(harness: Harness) -> dict[str, int]:
    return dict((await harness.stats(full=True))["meter_deliveries"])


async def wait_metric(
    harness: Harness, service: ServiceProcess, name: str, value: float, timeout_s: float = 30
) -> None:
    async def reached() -> bool:
        return service.metric(name) == value

    await harness.wait_for(reached, timeout_s, f"{name} to be {value}")


async def wait_log(harness: Harness, service: ServiceProcess, text: str) -> None:
    async def logged() -> bool:
        return any(text in line for line in service.log_lines())

    await harness.wait_for(logged, 30, f"the log to say {text!r}")


@pytest.mark.timeout(240)
async def test_redis_stopped_then_restarted_empty_under_load(
    harness: Harness, redis: RedisServer
) -> None:
    """Stopped 30 s under load, then back; then restarted empty; see the module docstring."""
    run = uuid.uuid4().hex[:6]
    environ = {"CONSUMER_REDIS_URL": redis.url, "CONSUMER_MAX_BUFFERED_METER_EVENTS": "200"}
    service = harness.service(**environ).start()
    before = charge_requests(60, f"before-{run}")
    during = charge_requests(60, f"during-{run}")
    first_usage, waiting_usage = meter_events(f"u1-{run}", 300), meter_events(f"u2-{run}", 2000)

    # Redis up: the baseline.
    await publish(harness, before)
    await publish_meter(harness, first_usage)
    await harness.client.replies(len(before), keys=set(before), timeout_s=60)

    async def first_usage_recorded() -> bool:
        # Committed means answered, which comes after the ledger recorded it delivered.
        return len(await meter_deliveries(harness)) == len(first_usage) and (
            await harness.all_committed(harness.topics.meter)
        )

    await harness.wait_for(first_usage_recorded, 60, "the first usage delivered and recorded")

    # Redis stopped for 30 s under load.
    redis.stop()
    stopped_at = time.monotonic()
    await publish(harness, during)
    await publish_meter(harness, waiting_usage)
    replies = await harness.client.replies(len(during), keys=set(during), timeout_s=25)
    assert {reply["status"] for reply in replies.values()} == {"COMPLETED"}  # kept flowing
    await wait_metric(harness, service, "stripe_consumer_redis_unavailable", 1)
    await wait_metric(harness, service, "stripe_consumer_paused_partitions", 3)  # the meter's
    await wait_log(harness, service, "Redis unavailable")
    await wait_log(harness, service, "identifier ledger unavailable; meter events wait")
    await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
    assert len(await meter_deliveries(harness)) == len(first_usage)  # none went unclaimed
    # Bounded: the meter lane's bound (200) plus at most one fetch (500); the rest waits in
    # Kafka.
    assert service.metric("stripe_consumer_in_flight") <= 200 + 500 < len(waiting_usage)

    # Redis back with its data: the waiting usage goes out once; nothing was lost.
    redis.start()

    async def all_usage_counted() -> bool:
        return len(await meter_deliveries(harness)) == len(first_usage) + len(waiting_usage)

    await harness.wait_for(all_usage_counted, 60, "the waiting usage delivered")
    await wait_metric(harness, service, "stripe_consumer_redis_unavailable", 0)
    await wait_log(harness, service, "Redis answers again")
    assert service.metric("stripe_consumer_redis_data_lost_total") == 0

    # Redis restarted empty, and the service restarted too (its own memory gone): copies of
    # answered charges and duplicates of counted usage arrive.
    redis.wipe()
    redis.start()
    await wait_metric(harness, service, "stripe_consumer_redis_data_lost_total", 1)
    await wait_log(harness, service, "Redis came back without its data")
    assert service.terminate() == 0
    restarted = harness.service(**environ).start()
    copies = dict(list(before.items())[:20])
    duplicates = first_usage[:50]
    await publish(harness, copies)
    await publish_meter(harness, duplicates)
    all_keys = set(before) | set(during)
    final = await harness.client.replies(len(all_keys), keys=all_keys, timeout_s=60)
    await harness.client.read(
        harness.topics.replies, len(copies), keys=set(copies), per_key=2, timeout_s=60
    )  # each copy answered

    async def everything_committed() -> bool:
        return await harness.all_committed(harness.topics.requests) and await harness.all_committed(
            harness.topics.meter
        )

    await harness.wait_for(everything_committed, 60, "every record answered and committed")
    assert {reply["status"] for reply in final.values()} == {"COMPLETED"}
    stats = await harness.stats(full=True)
    assert stats["keys_executed"] == len(all_keys)
    assert stats["keys_executed_more_than_once"] == []  # copies: Stripe replayed them
    assert stats["replays"] >= len(copies)
    counts = stats["meter_deliveries"]
    assert len(counts) == len(first_usage) + len(waiting_usage)  # nothing lost
    twice = {identifier for identifier, n in counts.items() if n > 1}
    assert twice == {event["identifier"] for event in duplicates}  # what an empty Redis costs
    assert restarted.metric("stripe_consumer_redis_unavailable") == 0

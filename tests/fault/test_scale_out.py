"""A scale step as an autoscaler takes it: a group of one replica under a steady load grows
to three (the request topic's three partitions) through the real broker. Every request is
answered exactly once, the new replicas take partitions, and the pause the rebalance costs
(the longest stretch without a reply) is measured and printed, never asserted."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from consumer.kafka.records import InboundRecord
from tests.fault.conftest import Harness

RATE_PER_S = 100  # requests published per second, before, during and after the step
COUNT = 2_000  # 20 s of load


def longest_gap_ms(replies: list[InboundRecord], since_ms: int) -> tuple[int, int]:
    """(longest gap between consecutive replies after since_ms, replies in that span)."""
    times = sorted(r.timestamp_ms for r in replies if r.timestamp_ms >= since_ms)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    return max(gaps, default=0), len(times)


@pytest.mark.timeout(300)
async def test_one_replica_grows_to_three_under_load(
    harness: Harness, charges: Callable[[int, str], dict[str, dict[str, Any]]]
) -> None:
    """1 -> 3 replicas while 100 requests/s arrive (Stripe answering in 20 ms): every
    request answered once and executed once, both new replicas consume, and the pause is
    reported (seconds without a reply, duplicates)."""
    requests = charges(COUNT, "scale")
    keys = list(requests)
    await harness.configure(latency_ms=20)
    options = {"CONSUMER_MAX_IN_FLIGHT": "64"}
    first = harness.service(**options).start()

    async def publish_steadily() -> None:
        began = time.monotonic()
        for i, key in enumerate(keys):
            await harness.client.publish(requests[key], key=key)
            await asyncio.sleep(max(0.0, began + (i + 1) / RATE_PER_S - time.monotonic()))

    publisher = asyncio.create_task(publish_steadily())

    async def warmed_up() -> bool:
        return int((await harness.stats())["executions_total"]) >= 500

    await harness.wait_for(warmed_up, 60, "500 charges executed by one replica")
    step_ms = int(time.time() * 1000)
    joining = [harness.service(**options), harness.service(**options)]
    await asyncio.gather(*(asyncio.to_thread(p.start) for p in joining))
    ready_ms = int(time.time() * 1000) - step_ms  # processes up (imports, settings, HTTP)

    async def all_consuming() -> bool:
        topic = {"topic": harness.topics.requests}
        return all(p.metric("stripe_consumer_records_consumed_total", topic) > 0 for p in joining)

    await harness.wait_for(all_consuming, 90, "both new replicas consuming")
    took_ms = int(time.time() * 1000) - step_ms
    await publisher
    records = await harness.client.read(
        harness.topics.replies, COUNT, keys=set(requests), timeout_s=120
    )
    per_key = Counter(r.key.decode() for r in records if r.key is not None)
    assert set(per_key) == set(requests)
    duplicates = sum(n - 1 for n in per_key.values())
    assert duplicates == 0
    stats = await harness.settled_stats()
    assert stats["keys_executed"] == COUNT
    assert stats["keys_executed_more_than_once"] == []
    assert first.metric("stripe_consumer_rebalances_total") >= 1
    gap_ms, after = longest_gap_ms(records, step_ms)
    print(  # noqa: T201  (the figure the README reports)
        f"scale 1->3 at {RATE_PER_S}/s: longest stretch without a reply {gap_ms} ms, "
        f"new replicas ready {ready_ms} ms and consuming {took_ms} ms after their start, "
        f"{after} replies after the step, duplicates {duplicates}"
    )

"""Two processes share the partitions; when one dies, the other takes over without loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fault.conftest import Harness


async def test_two_processes_share_and_one_takes_over(
    harness: Harness, charges: Callable[[int, str], dict[str, dict[str, Any]]]
) -> None:
    """A second replica joins mid-run (rebalance), then the first is killed: every request is
    answered, each key executed once, and both processes did part of the work."""
    requests = charges(600, "rebalance")
    keys = list(requests)
    await harness.configure(latency_ms=30)
    first = harness.service(CONSUMER_MAX_IN_FLIGHT="32").start()
    for key in keys[:200]:
        await harness.client.publish(requests[key], key=key)
    second = harness.service(CONSUMER_MAX_IN_FLIGHT="32").start()
    for key in keys[200:400]:
        await harness.client.publish(requests[key], key=key)

    async def both_busy() -> bool:
        return int((await harness.stats())["executions_total"]) >= 300

    await harness.wait_for(both_busy, 60, "300 charges executed")
    first_share = first.metric(
        "stripe_consumer_records_consumed_total", {"topic": harness.topics.requests}
    )
    second_share = second.metric(
        "stripe_consumer_records_consumed_total", {"topic": harness.topics.requests}
    )
    assert first_share > 0
    assert second_share > 0
    assert second.metric("stripe_consumer_rebalances_total") >= 1
    first.kill()
    for key in keys[400:]:
        await harness.client.publish(requests[key], key=key)
    replies = await harness.client.replies(len(requests), keys=set(requests), timeout_s=120)
    assert {reply["status"] for reply in replies.values()} == {"COMPLETED"}
    assert len(replies) == len(requests)
    stats = await harness.stats()
    assert stats["keys_executed"] == len(requests)
    assert stats["keys_executed_more_than_once"] == []

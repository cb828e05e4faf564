"""A crash loses nothing and executes nothing twice; a SIGTERM drains and commits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from consumer.kafka.admin import committed_offsets
from consumer.kafka.reader import end_offsets
from tests.fault.conftest import Harness


async def publish_all(harness: Harness, requests: dict[str, dict[str, Any]]) -> None:
    for key, request in requests.items():
        await harness.client.publish(request, key=key)


async def test_sigkill_mid_run_then_restart(
    harness: Harness, charges: Callable[[int, str], dict[str, dict[str, Any]]]
) -> None:
    """Kill -9 with hundreds of calls done and in flight; the restarted process answers every
    request, and the stand-in executed each idempotency key exactly once."""
    requests = charges(400, "kill")
    await harness.configure(latency_ms=40)
    await publish_all(harness, requests)
    first = harness.service(CONSUMER_MAX_IN_FLIGHT="64").start()

    async def a_third_executed() -> bool:
        return int((await harness.stats())["executions_total"]) >= len(requests) // 3

    await harness.wait_for(a_third_executed, 60, "a third of the charges executed")
    first.kill()
    killed_at = (await harness.stats())["executions_total"]
    harness.service(CONSUMER_MAX_IN_FLIGHT="64").start()
    replies = await harness.client.replies(len(requests), keys=set(requests), timeout_s=120)
    assert {key: reply["status"] for key, reply in replies.items()} == dict.fromkeys(
        requests, "COMPLETED"
    )
    stats = await harness.stats()
    assert stats["keys_executed"] == len(requests)
    assert stats["keys_executed_more_than_once"] == []
    assert stats["executions_total"] == len(requests)
    assert 0 < killed_at < len(requests)


async def test_sigterm_drains_in_flight_work_and_commits(
    harness: Harness, charges: Callable[[int, str], dict[str, dict[str, Any]]]
) -> None:
    """SIGTERM while every call is in flight: the process finishes them, replies, commits
    and exits 0; a new process has nothing left to do."""
    requests = charges(40, "term")
    await harness.configure(latency_ms=1500)
    await publish_all(harness, requests)
    service = harness.service(CONSUMER_MAX_IN_FLIGHT="64").start()

    async def all_in_flight() -> bool:
        return int((await harness.stats())["calls"]) >= len(requests)

    await harness.wait_for(all_in_flight, 30, "all calls in flight")
    assert service.terminate(timeout_s=30) == 0
    replies = await harness.client.replies(len(requests), keys=set(requests), timeout_s=10)
    assert len(replies) == len(requests)
    committed = await committed_offsets(
        harness.client.connection, harness.topics.environ()["CONSUMER_GROUP_ID"]
    )
    ends = await end_offsets(harness.client.connection, harness.topics.requests)
    assert {tp: committed.get(tp) for tp in ends} == ends
    stats = await harness.stats()
    assert stats["executions_total"] == len(requests)

"""Rebalances per rolling restart of 3 replicas, with and without static group membership
(CONSUMER_GROUP_INSTANCE_ID, as the chart's consumer.staticMembership sets it from the pod
name). An observer in the same group, never restarted, counts the rebalances the group goes
through. The figures are printed (README, "Running on a replicated cluster")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

import aiokafka
import pytest
from aiokafka.abc import ConsumerRebalanceListener

from tests.fault.conftest import Harness

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]
REPLICAS = 3


class Counting(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    def __init__(self) -> None:
        self.assignments = 0

    async def on_partitions_revoked(self, revoked: Iterable[object]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Iterable[object]) -> None:
        self.assignments += 1


@contextlib.asynccontextmanager
async def observer(harness: Harness) -> AsyncIterator[Counting]:
    """A member of the service's group that polls and never restarts."""
    counting = Counting()
    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=harness.client.connection.bootstrap_servers,
        group_id=harness.topics.environ()["CONSUMER_GROUP_ID"],
        enable_auto_commit=False,
        session_timeout_ms=30_000,
    )
    await consumer.start()
    consumer.subscribe([harness.topics.requests, harness.topics.meter], listener=counting)

    async def poll() -> None:
        while True:
            await consumer.getmany(timeout_ms=200)

    polling = asyncio.create_task(poll())
    try:
        yield counting
    finally:
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
        await consumer.stop()


async def rolling_restart(harness: Harness, static: bool) -> int:
    """Start 3 replicas, then stop and start each in turn, as a rollout does; the
    rebalances the observer saw during the restarts."""

    def settings(i: int) -> dict[str, str]:
        member = {"CONSUMER_GROUP_INSTANCE_ID": f"replica-{i}"} if static else {}
        return {"CONSUMER_SESSION_TIMEOUT_SECONDS": "30", **member}

    async with observer(harness) as counting:
        replicas = [
            await asyncio.to_thread(harness.service(**settings(i)).start) for i in range(REPLICAS)
        ]
        await asyncio.sleep(3)  # let the last join settle before counting
        before = counting.assignments
        for i, replica in enumerate(replicas):
            assert await asyncio.to_thread(replica.terminate) == 0
            replicas[i] = await asyncio.to_thread(harness.service(**settings(i)).start)
        await asyncio.sleep(3)
        during = counting.assignments - before
        for replica in replicas:
            await asyncio.to_thread(replica.terminate)
    return during


async def test_static_membership_spares_the_group_its_rebalances(harness: Harness) -> None:
    """Without static membership each replica's stop and start rebalances the group; with
    it (each back within the 30 s session timeout, under its own instance id) none does."""
    dynamic = await rolling_restart(harness, static=False)
    static = await rolling_restart(harness, static=True)
    assert dynamic >= REPLICAS
    assert static == 0
    print(  # noqa: T201  (the figures the README reports)
        f"\nrebalances per rolling restart of {REPLICAS} replicas: {dynamic} dynamic, "
        f"{static} static"
    )

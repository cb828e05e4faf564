"""Brokers failing under a run: the broker leading the request partitions SIGKILLed in a
3-node cluster (RF 3, min.insync.replicas 2) and restarted later; a single broker (the whole
cluster) killed and restarted. Every request answered, no idempotency key executed twice,
no meter identifier lost or counted twice, the service reconnecting by itself, readiness
telling the truth meanwhile and liveness never failing for a broker outage. The figures
measured are printed (README, "Running on a replicated cluster")."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from consumer.kafka.producer import RecordSink
from consumer.kafka.records import OutboundRecord
from tests.cluster.conftest import Brokers
from tests.fault.conftest import Harness
from tests.support.process import ServiceProcess

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(480)]

CHARGES = 2000
METER_EVENTS = 1000


def meter_events(count: int) -> dict[str, dict[str, Any]]:
    run = uuid.uuid4().hex[:8]
    return {
        f"meter-{run}-{i}": {
            "operation": "create_meter_event",
            "event_name": "api_requests",
            "customer_id": f"cus_{i % 50:05d}",
            "identifier": f"use-{run}-{i}",
        }
        for i in range(count)
    }


async def publish(harness: Harness, requests: dict[str, dict[str, Any]], topic: str) -> None:
    sink = RecordSink(harness.client.connection, linger_ms=10)
    await sink.start()
    try:
        items = list(requests.items())
        for start in range(0, len(items), 500):
            await asyncio.gather(
                *(
                    sink.send(OutboundRecord(topic, key.encode(), msgspec.json.encode(value)))
                    for key, value in items[start : start + 500]
                )
            )
    finally:
        await sink.stop()


async def leader_of_most_partitions(bootstrap: str, topic: str) -> int:
    """The node id leading most of the topic's partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    leaders = [int(p["leader"]) for p in described["partitions"]]
    return max(set(leaders), key=leaders.count)


def metric_sum(service: ServiceProcess, name: str) -> float:
    """The sum of every sample of a metric (all label sets)."""
    _, text = service.http_get("/metrics")
    total = 0.0
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if not line.startswith("#") and series.partition("{")[0] == name:
            total += float(value)
    return total


@dataclass
class Watch:
    """/readyz and the requests handled, sampled every 0.25 s through an outage; /healthz's
    answers, which a broker outage must not turn (liveness would restart the pod)."""

    service: ServiceProcess
    samples: list[tuple[float, int, str, float]] = field(default_factory=list)
    liveness: set[int] = field(default_factory=set)

    async def run(self) -> None:
        while True:
            code, body = await asyncio.to_thread(self.service.http_get, "/readyz")
            handled = await asyncio.to_thread(
                metric_sum, self.service, "stripe_consumer_requests_total"
            )
            self.samples.append((time.monotonic(), code, body, handled))
            alive, _ = await asyncio.to_thread(self.service.http_get, "/healthz")
            self.liveness.add(alive)
            await asyncio.sleep(0.25)

    def longest_stall_after(self, moment: float) -> float:
        """The longest time after ``moment`` in which no request was handled."""
        longest, since, last = 0.0, moment, None
        for at, _, _, handled in self.samples:
            if at < moment:
                last = handled
                continue
            if last is not None and handled > last:
                longest = max(longest, at - since)
                since = at
            last = handled
        return longest

    def readiness_said(self, text: str, after: float = 0.0) -> bool:
        return any(text in body for at, _, body, _ in self.samples if at >= after)

    def transitions(self, since: float) -> list[str]:
        """Each change of /readyz's answer, with its time relative to ``since``."""
        changes, last = [], None
        for at, code, body, handled in self.samples:
            if (code, body) != last:
                changes.append(f"{at - since:+.1f}s {code} {body} (handled {handled:.0f})")
                last = (code, body)
        return changes


@contextlib.asynccontextmanager
async def watching(service: ServiceProcess) -> AsyncIterator[Watch]:
    watch = Watch(service)
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def everything_answered(
    harness: Harness, charges: dict[str, dict[str, Any]], identifiers: int
) -> dict[str, Any]:
    """Once every charge is answered and every record committed: the stand-in's stats."""
    replies = await harness.client.replies(len(charges), keys=set(charges), timeout_s=240)
    assert {key: reply["status"] for key, reply in replies.items()} == dict.fromkeys(
        charges, "COMPLETED"
    )

    async def committed() -> bool:
        return await harness.all_committed(harness.topics.requests) and (
            await harness.all_committed(harness.topics.meter)
        )

    await harness.wait_for(committed, 120, "every request and meter event committed")
    stats = await harness.settled_stats()
    assert stats["meter_identifiers"] == identifiers
    return stats


def assert_once_each(stats: dict[str, Any], charges: int, identifiers: int) -> None:
    assert stats["keys_executed"] == charges
    assert stats["keys_executed_more_than_once"] == []
    assert stats["executions_total"] == charges
    assert stats["meter_identifiers"] == identifiers
    assert stats["meter_identifiers_delivered_more_than_once"] == []


async def start_run(
    harness: Harness, charges: dict[str, dict[str, Any]], meters: dict[str, dict[str, Any]]
) -> ServiceProcess:
    """A backlog answered at about 80 charges/s (100 ms a call, 8 at a time), so the run
    lasts long enough for a broker to fail and come back in its middle."""
    await harness.configure(latency_ms=100)
    await publish(harness, charges, harness.topics.requests)
    await publish(harness, meters, harness.topics.meter)
    return harness.service(CONSUMER_MAX_IN_FLIGHT="8").start(ready_timeout_s=90)


async def a_share_executed(harness: Harness, count: int) -> None:
    async def done() -> bool:
        return int((await harness.stats())["executions_total"]) >= count

    await harness.wait_for(done, 120, f"{count} charges executed")


async def test_leader_killed_in_a_replicated_cluster_loses_nothing(
    cluster_harness: Harness,
    cluster: Brokers,
    charges: Callable[[int, str], dict[str, dict[str, Any]]],
) -> None:
    """3,000 requests (2,000 charges, 1,000 meter events); the node leading most request
    partitions SIGKILLed a third in and restarted 15 s later: every charge answered and
    executed once, every meter identifier delivered once, the service never restarted, and
    readiness never claimed no broker answers while two of three served."""
    harness = cluster_harness
    requests, meters = charges(CHARGES, "leader"), meter_events(METER_EVENTS)
    service = await start_run(harness, requests, meters)
    async with watching(service) as watch:
        await a_share_executed(harness, CHARGES // 3)
        victim = await leader_of_most_partitions(cluster.bootstrap, harness.topics.requests)
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.kill, victim)
        await asyncio.sleep(15)
        restart_s = await asyncio.to_thread(cluster.start, victim)
        stats = await everything_answered(harness, requests, METER_EVENTS)
        stall = watch.longest_stall_after(killed_at)
        said = watch.transitions(killed_at)
        assert not watch.readiness_said("no Kafka broker answers", after=killed_at), said
        assert watch.liveness == {200}
    assert_once_each(stats, CHARGES, METER_EVENTS)
    assert service.process is not None
    assert service.process.poll() is None  # the same process throughout
    assert metric_sum(service, "stripe_consumer_in_flight") == 0
    print(  # noqa: T201  (the figures the README reports)
        f"\nleader kill: node {victim}; {CHARGES + METER_EVENTS} requests, "
        f"{stats['keys_executed']} charges executed once, 0 twice, "
        f"{stats['meter_identifiers']} meter identifiers, 0 twice; longest stall "
        f"{stall:.1f}s after the kill; node ready again {restart_s:.1f}s after its restart; "
        "readiness: " + " | ".join(said)
    )


async def test_single_broker_restarted_mid_run_loses_nothing(
    single_harness: Harness,
    single_broker: Brokers,
    charges: Callable[[int, str], dict[str, dict[str, Any]]],
) -> None:
    """The only broker SIGKILLed mid-run and started again 10 s later: the same service
    process reconnects by itself and answers everything, once; /readyz said no broker
    answers during the outage and is ready again after."""
    harness = single_harness
    requests, meters = charges(600, "single"), meter_events(300)
    service = await start_run(harness, requests, meters)
    async with watching(service) as watch:
        await a_share_executed(harness, 200)
        killed_at = time.monotonic()
        await asyncio.to_thread(single_broker.kill)
        await asyncio.sleep(10)
        await asyncio.to_thread(single_broker.start)
        stats = await everything_answered(harness, requests, 300)
        service.wait_ready(60)
        stall = watch.longest_stall_after(killed_at)
        said = watch.transitions(killed_at)
        assert watch.readiness_said("no Kafka broker answers", after=killed_at), said
        assert watch.liveness == {200}  # not ready, but alive: no restart for a broker outage
    assert_once_each(stats, 600, 300)
    assert service.process is not None
    assert service.process.poll() is None  # the same process throughout
    print(  # noqa: T201  (the figures the README reports)
        f"\nsingle broker restart: 900 requests answered once; longest stall {stall:.1f}s; "
        "readiness: " + " | ".join(said)
    )

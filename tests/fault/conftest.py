"""Fault tier: the service as real processes against a real broker and the counting Stripe
stand-in; SIGKILL, SIGTERM, rebalances, Stripe storms."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from consumer.kafka.admin import committed_offsets
from consumer.kafka.reader import end_offsets
from tests.support.process import ServiceProcess
from tests.support.service import KafkaClient, Topics
from tests.support.stack import StandIn, standin_request

pytestmark = pytest.mark.fault


class Harness:
    """One test's topics, stand-in and service processes."""

    def __init__(
        self, stack: dict[str, str], standin: StandIn, client: KafkaClient, logs: Path
    ) -> None:
        self.stack = stack
        self.standin = standin
        self.client = client
        self.topics = client.topics
        self.logs = logs
        self.processes: list[ServiceProcess] = []

    def environ(self, **overrides: str) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.stack["KAFKA_BOOTSTRAP_SERVERS"],
            "STRIPE_API_BASE": self.standin.url,
            "STRIPE_METER_EVENTS_BASE": self.standin.url,
            "CONSUMER_REDIS_URL": self.stack["REDIS_URL"],
            "CONSUMER_REDIS_KEY_PREFIX": f"{self.topics.prefix}:",  # this test's keys alone
            "CONSUMER_METER_CLAIM_SECONDS": "5",  # the setting's minimum
            "STRIPE_API_KEY": "sk_test_51FaultTests",
            "STRIPE_RATE_LIMIT": "100000",
            "STRIPE_TIMEOUT_SECONDS": "5",
            "CONSUMER_COMMIT_INTERVAL_SECONDS": "0.2",
            "CONSUMER_SHUTDOWN_GRACE_SECONDS": "20",
            # The meter error poller's GETs would show in the stand-in's call counts; the
            # verdict tests turn it on.
            "CONSUMER_METER_ERRORS_POLL_SECONDS": "0",
            **self.topics.environ(),
            **overrides,
        }

    def service(self, **overrides: str) -> ServiceProcess:
        process = ServiceProcess(
            self.environ(**overrides), self.logs / f"service-{len(self.processes)}.log"
        )
        self.processes.append(process)
        return process

    async def configure(self, **config: Any) -> None:
        await standin_request(self.standin.url, "POST", "/_standin/config", config)

    async def stats(self, full: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = await standin_request(
            self.standin.url, "GET", "/_standin/stats" + ("?full=1" if full else "")
        )
        return result

    async def settled_stats(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """The stand-in's full stats once it has finished what reached it: no request in
        flight, and no new call between two reads. After a SIGKILL, requests the service
        sent just before dying are still being served (Stripe, too, completes a request whose
        client went away); reading at once would miss their effects."""
        deadline = time.monotonic() + timeout_s
        before = await self.stats(full=True)
        while True:
            await asyncio.sleep(0.2)
            now = await self.stats(full=True)
            if now["in_flight"] == 0 and now["calls"] == before["calls"]:
                return now
            if time.monotonic() > deadline:
                raise TimeoutError("the stand-in did not settle")
            before = now

    async def all_committed(self, topic: str) -> bool:
        """Every record of the topic answered and committed by the group (a partition that
        never had a record has nothing to commit)."""
        group = self.topics.environ()["CONSUMER_GROUP_ID"]
        committed = await committed_offsets(self.client.connection, group)
        ends = await end_offsets(self.client.connection, topic)
        return all(committed.get(tp, 0) == end for tp, end in ends.items())

    async def wait_for(
        self, condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not await condition():
            if time.monotonic() > deadline:
                raise TimeoutError(what)
            await asyncio.sleep(0.1)

    async def logged(
        self,
        service: ServiceProcess,
        wanted: Callable[[dict[str, Any]], bool],
        count: int,
        timeout_s: float = 30,
    ) -> list[dict[str, Any]]:
        """The service's JSON log lines that match, once at least ``count`` are written: a
        reply reaches Kafka before its request's log line is written, so never read the log
        at the moment the reply arrives."""
        found: list[dict[str, Any]] = []

        async def enough() -> bool:
            nonlocal found
            lines = (json.loads(text) for text in service.log_lines() if text.startswith("{"))
            found = [line for line in lines if wanted(line)]
            return len(found) >= count

        await self.wait_for(enough, timeout_s, f"{count} matching lines in {service.log_path}")
        return found


@pytest_asyncio.fixture
async def harness(
    stack: dict[str, str], standin: StandIn, tmp_path: Path
) -> AsyncIterator[Harness]:
    await standin_request(standin.url, "POST", "/_standin/reset")
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], Topics()) as client:
        h = Harness(stack, standin, client, tmp_path)
        try:
            yield h
        finally:
            for process in h.processes:
                process.close()


def charge_requests(count: int, tag: str) -> dict[str, dict[str, Any]]:
    """``count`` charges by taskId, each its own task of one workflow."""
    return {
        f"{tag}-{i:05d}": {
            "operation": "create_charge",
            "amount": 100 + i,
            "currency": "usd",
            "source": "tok_visa",
            "taskId": f"{tag}-{i:05d}",
            "workflowInstanceId": f"wf-{tag}",
            "taskRefName": f"charge_{i}",
        }
        for i in range(count)
    }


@pytest.fixture
def charges() -> Callable[[int, str], dict[str, dict[str, Any]]]:
    return charge_requests

"""Stripe's verdict on meter events, through the real broker, Redis and the stand-in: every
meter event that does not count ends on stripe.meter-errors exactly once (refused before
sending, or reported later by Stripe through the webhook or the poller), and the ledger
says `rejected` for each."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from consumer.kafka.producer import RecordSink
from consumer.kafka.records import OutboundRecord
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.ledgers.redis import RedisIdentifierLedger
from consumer.metering.verdicts.book import RedisVerdictBook
from consumer.metering.verdicts.intake import ledger_states
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import Settings
from consumer.shared_state.redis_client import RedisConnection
from tests.support.process import free_port
from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import StandIn, standin_request

pytestmark = pytest.mark.integration
SECRET = "whsec_integration_meter_verdicts"
CUSTOMERS = 20


@dataclass
class World:
    """One test's private topics, Redis prefix and stand-in state."""

    stack: dict[str, str]
    standin: StandIn
    client: KafkaClient
    topics: Topics
    prefix: str
    customers: list[str]
    http_port: int

    @property
    def errors_topic(self) -> str:
        return f"{self.topics.prefix}.meter-errors"

    def settings(self, **overrides: str) -> Settings:
        environ = {
            "STRIPE_API_BASE": self.standin.url,
            "STRIPE_METER_EVENTS_BASE": self.standin.url,
            "STRIPE_API_KEY": "sk_test_51MeterVerdicts",
            "CONSUMER_METER_ERRORS_TOPIC": self.errors_topic,
            "CONSUMER_REDIS_URL": self.stack["REDIS_URL"],
            "CONSUMER_REDIS_KEY_PREFIX": self.prefix,
            "CONSUMER_HTTP_PORT": str(self.http_port),
            "STRIPE_RATE_LIMIT": "100000",
            **overrides,
        }
        return service_settings(self.stack, self.topics, **environ)

    async def configure(self, **config: Any) -> None:
        await standin_request(self.standin.url, "POST", "/_standin/config", config)

    async def billing(self) -> dict[str, Any]:
        result: dict[str, Any] = await standin_request(self.standin.url, "GET", "/_standin/billing")
        return result

    async def error_records(self, count: int) -> list[dict[str, Any]]:
        records = await self.client.read(self.errors_topic, count, timeout_s=90)
        return [json.loads(r.value or b"{}") | {"_key": (r.key or b"").decode()} for r in records]

    async def states(self, identifiers: list[str]) -> list[str | None]:
        connection = RedisConnection(
            self.stack["REDIS_URL"], ServiceMetrics(CollectorRegistry()), prefix=self.prefix
        )
        try:
            ledger = RedisIdentifierLedger(
                connection, window_seconds=3600, lease_seconds=60, owner="test"
            )
            book = RedisVerdictBook(connection, window_seconds=3600, owner="test")
            return await ledger_states(ledger, book, LedgerScope("default", None), identifiers)
        finally:
            await connection.close()


async def standin_form(url: str, path: str, data: dict[str, str]) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + path, data=data, headers={"Authorization": "Bearer sk_test_51MeterVerdicts"}
        ) as response,
    ):
        response.raise_for_status()
        return await response.json()


@pytest_asyncio.fixture
async def world(stack: dict[str, str], standin: StandIn) -> AsyncIterator[World]:
    """Customers and meters in the stand-in: `api_calls` active, `legacy_calls` inactive."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    customers = [
        (await standin_form(standin.url, "/v1/customers", {"email": f"c{i}@example.com"}))["id"]
        for i in range(CUSTOMERS)
    ]
    await standin_form(standin.url, "/v1/billing/meters", {"event_name": "api_calls"})
    legacy = await standin_form(standin.url, "/v1/billing/meters", {"event_name": "legacy_calls"})
    await standin_form(standin.url, f"/v1/billing/meters/{legacy['id']}/deactivate", {})
    topics = Topics()
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client:
        yield World(
            stack, standin, client, topics, f"test-{uuid.uuid4().hex[:8]}:", customers, free_port()
        )


@dataclass
class Batch:
    events: list[dict[str, Any]]
    unknown_customer: list[str]
    inactive_meter: list[str]
    bad_timestamp: list[str]

    @property
    def failing(self) -> set[str]:
        return {*self.unknown_customer, *self.inactive_meter, *self.bad_timestamp}


def batch(world: World, total: int, unknown: int, inactive: int, bad_time: int) -> Batch:
    """`total` events; the first `unknown` + `inactive` + `bad_time` are the failing ones."""
    run = uuid.uuid4().hex[:6]
    now = int(time.time())
    result = Batch([], [], [], [])
    for i in range(total):
        identifier = f"use-{run}-{i}"
        event: dict[str, Any] = {
            "operation": "create_meter_event",
            "event_name": "api_calls",
            "customer_id": world.customers[i % CUSTOMERS],
            "identifier": identifier,
            "value": 1 + i % 3,
            "timestamp": now - i % 600,
        }
        if i < unknown:
            event["customer_id"] = f"cus_Unknown{run}{i}"
            result.unknown_customer.append(identifier)
        elif i < unknown + inactive:
            event["event_name"] = "legacy_calls"
            result.inactive_meter.append(identifier)
        elif i < unknown + inactive + bad_time:
            event["timestamp"] = now + 3600  # Stripe refuses more than 5 minutes ahead
            result.bad_timestamp.append(identifier)
        result.events.append(event)
    return result


async def publish(world: World, events: list[dict[str, Any]]) -> None:
    sink = RecordSink(world.client.connection, linger_ms=20)
    await sink.start()
    try:
        for start in range(0, len(events), 1000):
            chunk = events[start : start + 1000]
            await asyncio.gather(
                *(
                    sink.send(
                        OutboundRecord(
                            world.topics.meter,
                            e["identifier"].encode(),
                            msgspec.json.encode(e),
                        )
                    )
                    for e in chunk
                )
            )
    finally:
        await sink.stop()


async def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


async def judged(world: World, count: int) -> None:
    """Wait until the stand-in judged `count` events (accepted or rejected)."""

    async def done() -> bool:
        billing = await world.billing()
        return bool(billing["accepted"] + sum(billing["rejected"].values()) >= count)

    await wait_for(done, 90, f"{count} meter events judged by the stand-in")


def assert_each_once(records: list[dict[str, Any]], expected: dict[str, str]) -> None:
    """Every failing identifier on the topic exactly once, with its code, keyed by it."""
    named = [r for r in records if r["identifier"] is not None]
    assert Counter(r["identifier"] for r in named) == Counter(expected.keys())
    assert {r["identifier"]: r["code"] for r in named} == expected
    assert all(r["_key"] == r["identifier"] for r in named)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(f"stripe_consumer_{name}", labels) or 0.0


async def test_every_failure_lands_once_through_the_webhook(world: World) -> None:
    """10,000 events, 137 for unknown customers (reported by Stripe, pushed to the webhook),
    20 for an inactive meter and 11 with a refused timestamp (refused before sending): each
    of the 168 on stripe.meter-errors once, `rejected` in the ledger; the poller, running
    too, finds the reports already processed."""
    events = batch(world, 10_000, unknown=137, inactive=20, bad_time=11)
    await world.configure(
        webhook_url=f"http://127.0.0.1:{world.http_port}/stripe/webhook",
        webhook_secret=SECRET,
        error_report_seconds=0.5,
    )
    settings = world.settings(
        STRIPE_WEBHOOK_SECRET=SECRET,
        CONSUMER_METER_ERRORS_POLL_SECONDS="1",
        CONSUMER_METERS_REFRESH_SECONDS="60",
    )
    async with running_service(settings) as service:
        await publish(world, events.events)
        await world.error_records(168)

        async def poller_saw_it() -> bool:
            seen = sample(
                service.registry, "meter_error_reports_total", source="poller", result="duplicate"
            )
            return seen >= 1

        await wait_for(poller_saw_it, 30, "the poller finding the report the webhook processed")
        records = await world.error_records(168)
        webhook = sample(
            service.registry, "meter_error_reports_total", source="webhook", result="processed"
        )
    expected = dict.fromkeys(events.unknown_customer, "meter_event_customer_not_found")
    expected |= dict.fromkeys([*events.inactive_meter, *events.bad_timestamp], "validation_error")
    assert_each_once(records, expected)
    assert len(records) == 168
    assert webhook >= 1
    refused = [r for r in records if r["code"] == "validation_error"]
    assert all(r["stripe_event_id"] is None for r in refused)
    assert {r["event_name"] for r in records} == {"api_calls", "legacy_calls"}
    states = await world.states(sorted(events.failing))
    assert set(states) == {"rejected:meter_event_customer_not_found", "rejected:validation_error"}
    good = [e["identifier"] for e in events.events[168:]]
    assert set(await world.states(good)) == {"delivered"}
    assert (await world.billing())["accepted"] == 10_000 - 168

"""Stripe's verdict on meter events, through the real broker, Redis and the stand-in: every
meter event that does not count ends on stripe.meter-errors exactly once (refused before
sending, or reported later by Stripe through the webhook or the poller), and the ledger
says `rejected` for each."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
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

from consumer.cli.reconcile import reconcile_command
from consumer.kafka.admin import committed_offsets
from consumer.kafka.producer import RecordSink
from consumer.kafka.reader import end_offsets
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
        window = self.settings().meter_dedup_window_seconds  # the service's ledger layout
        try:
            ledger = RedisIdentifierLedger(
                connection, window_seconds=window, lease_seconds=60, owner="test"
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


async def standin_get(url: str, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + path, headers={"Authorization": "Bearer sk_test_51MeterVerdicts"}) as r,
    ):
        r.raise_for_status()
        return await r.json()


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
        await wait_for(lambda: _committed(world), 60, "every meter event answered")
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
    code, report = await reconcile(settings)
    assert code == 0, report
    assert "rejected events by code: meter_event_customer_not_found=137\n" in report


async def test_every_failure_lands_once_through_the_poller_alone(world: World) -> None:
    """The webhook off (no secret, nothing pushed): the poller alone finds every report,
    including those Stripe made while the service was stopped; 168 records, each once."""
    await world.configure(error_report_seconds=3600)  # reports only when the test flushes
    settings = world.settings(CONSUMER_METER_ERRORS_POLL_SECONDS="0.5")
    first = batch(world, 5_000, unknown=70, inactive=10, bad_time=6)
    second = batch(world, 5_000, unknown=67, inactive=10, bad_time=5)
    async with running_service(settings) as service:
        await publish(world, first.events)
        await judged(world, 5_000 - 6)
        await standin_request(world.standin.url, "POST", "/_standin/flush_errors")
        await world.error_records(86)
        await publish(world, second.events)
        await judged(world, 10_000 - 11)
        await wait_for(lambda: _refusals_sent(service.registry, 11), 30, "refusals sent")
    # Stopped: Stripe reports the second batch's failures now.
    await standin_request(world.standin.url, "POST", "/_standin/flush_errors")
    async with running_service(settings):
        records = await world.error_records(168)
    expected: dict[str, str] = {}
    for part in (first, second):
        expected |= dict.fromkeys(part.unknown_customer, "meter_event_customer_not_found")
        expected |= dict.fromkeys(part.inactive_meter, "archived_meter")
        expected |= dict.fromkeys(part.bad_timestamp, "validation_error")
    assert_each_once(records, expected)
    assert len(records) == 168
    assert len({r["stripe_event_id"] for r in records if r["stripe_event_id"]}) == 4
    failing = sorted(first.failing | second.failing)
    assert set(await world.states(failing)) == {
        "rejected:meter_event_customer_not_found",
        "rejected:archived_meter",
        "rejected:validation_error",
    }
    code, report = await reconcile(settings)
    assert code == 0, report
    assert (
        "rejected events by code: archived_meter=20, meter_event_customer_not_found=137\n" in report
    )


async def reconcile(settings: Settings) -> tuple[int, str]:
    """`python -m consumer reconcile --since 2h`, in process: (exit code, what it printed)."""
    out = io.StringIO()
    code = await reconcile_command(settings, "2h", 0.0, "default", out=out)
    return code, out.getvalue()


async def _committed(world: World) -> bool:
    """Every meter-topic record answered and committed by the group."""
    group = world.topics.environ()["CONSUMER_GROUP_ID"]
    committed = await committed_offsets(world.client.connection, group)
    ends = await end_offsets(world.client.connection, world.topics.meter)
    return all(committed.get(tp, 0) == end for tp, end in ends.items())


async def _refusals_sent(registry: CollectorRegistry, count: int) -> bool:
    return sample(registry, "meter_errors_total", code="validation_error") >= count


async def test_the_unnamed_rest_is_one_count_record(world: World) -> None:
    """Stripe names 5 of 30 failing identifiers: 5 records keyed by them, and one for the
    other 25 keyed by the meter id, identifier null; only the 5 are `rejected`."""
    await world.configure(
        webhook_url=f"http://127.0.0.1:{world.http_port}/stripe/webhook",
        webhook_secret=SECRET,
        error_report_seconds=0.3,
        error_sample_limit=5,
    )
    events = batch(world, 200, unknown=30, inactive=0, bad_time=0)
    settings = world.settings(STRIPE_WEBHOOK_SECRET=SECRET, CONSUMER_METER_ERRORS_POLL_SECONDS="0")
    async with running_service(settings):
        await publish(world, events.events)
        records = await world.error_records(6)
    named = [r for r in records if r["identifier"] is not None]
    rest = [r for r in records if r["identifier"] is None]
    assert len(named) == 5
    assert all(r["sample"] and r["error_count"] == 1 for r in named)
    assert [(r["error_count"], r["sample"], r["code"]) for r in rest] == [
        (25, False, "meter_event_customer_not_found")
    ]
    assert rest[0]["_key"] == rest[0]["meter_id"]
    states = await world.states(events.unknown_customer)
    assert Counter(states) == {"rejected:meter_event_customer_not_found": 5, "delivered": 25}
    code, report = await reconcile(settings)
    assert code == 1, report  # the unnamed 25 cannot be placed: drift, and the exit says so
    assert "rejected events by code: meter_event_customer_not_found=5\n" in report


def signed(body: bytes, secret: str, at: int) -> str:
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


async def test_a_forged_webhook_changes_nothing_and_is_counted(world: World) -> None:
    """A real report's notification, unsigned, signed with another secret, or replayed with
    a timestamp 20 minutes old: 400 each, counted, nothing processed; then the genuine one
    is processed (so the forgeries had not claimed it), and again is a 200 that changes
    nothing."""
    await world.configure(error_report_seconds=3600)
    events = batch(world, 20, unknown=3, inactive=0, bad_time=0)
    settings = world.settings(STRIPE_WEBHOOK_SECRET=SECRET, CONSUMER_METER_ERRORS_POLL_SECONDS="0")
    async with running_service(settings) as service:
        await publish(world, events.events)
        await judged(world, 20)
        await standin_request(world.standin.url, "POST", "/_standin/flush_errors")
        listed = await standin_get(world.standin.url, "/v2/core/events")
        thin = {k: v for k, v in listed["data"][0].items() if k != "data"}
        body = json.dumps(thin).encode()
        now = int(time.time())
        url = f"http://127.0.0.1:{world.http_port}/stripe/webhook"
        statuses = []
        async with aiohttp.ClientSession() as session:
            for headers in (
                {},
                {"Stripe-Signature": signed(body, "whsec_someone_else", now)},
                {"Stripe-Signature": signed(body, SECRET, now - 1200)},
                {"Stripe-Signature": signed(body, SECRET, now)},
                {"Stripe-Signature": signed(body, SECRET, now)},
            ):
                async with session.post(url, data=body, headers=headers) as response:
                    statuses.append(response.status)
        registry = service.registry
        refused = {
            reason: sample(registry, "meter_webhook_refused_total", reason=reason)
            for reason in ("signature", "stale")
        }
        processed = sample(
            registry, "meter_error_reports_total", source="webhook", result="processed"
        )
        duplicate = sample(
            registry, "meter_error_reports_total", source="webhook", result="duplicate"
        )
        records = await world.error_records(3)
    assert statuses == [400, 400, 400, 200, 200]
    assert refused == {"signature": 2.0, "stale": 1.0}
    assert (processed, duplicate) == (1.0, 1.0)
    assert sorted(r["identifier"] for r in records) == sorted(events.unknown_customer)


async def test_a_corrected_resend_is_sent_not_dropped_as_a_duplicate(world: World) -> None:
    """Two events Stripe rejected (unknown customer), resent corrected under the same
    identifiers: the service sends them (the ledger forgot them on rejection), and the
    ledger then says `delivered`; a plain duplicate of a good event is still dropped."""
    await world.configure(
        webhook_url=f"http://127.0.0.1:{world.http_port}/stripe/webhook",
        webhook_secret=SECRET,
        error_report_seconds=0.3,
    )
    events = batch(world, 10, unknown=2, inactive=0, bad_time=0)
    settings = world.settings(STRIPE_WEBHOOK_SECRET=SECRET, CONSUMER_METER_ERRORS_POLL_SECONDS="0")
    async with running_service(settings):
        await publish(world, events.events)
        await world.error_records(2)
        corrected = [dict(e, customer_id=world.customers[0]) for e in events.events[:2]]
        await publish(world, [*corrected, events.events[5]])

        async def resent() -> bool:
            stats = await standin_request(world.standin.url, "GET", "/_standin/stats?full=1")
            return all(stats["meter_deliveries"].get(i) == 2 for i in events.unknown_customer)

        await wait_for(resent, 30, "the corrected events sent again")

        async def delivered() -> bool:
            return await world.states(events.unknown_customer) == ["delivered", "delivered"]

        await wait_for(delivered, 30, "the ledger saying delivered")
        await world.client.read(world.topics.meter, 13)  # the duplicate was consumed too
        await wait_for(lambda: _committed(world), 30, "every meter event committed")
    stats = await standin_request(world.standin.url, "GET", "/_standin/stats?full=1")
    assert stats["meter_deliveries"][events.events[5]["identifier"]] == 1
    assert (await world.billing())["accepted"] == 10

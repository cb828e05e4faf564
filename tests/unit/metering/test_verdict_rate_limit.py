"""The verdict path's GETs (known-customer lookups above all: one per new customer id)
count against the integration's Stripe rate limit, as every operation's call does, and
Stripe's 429 on one of them slows the limiter down."""

from __future__ import annotations

from typing import cast

import msgspec
from prometheus_client import CollectorRegistry

from consumer.contract.requests import CreateMeterEvent
from consumer.kafka.producer import RecordSink
from consumer.metering.ledgers.memory import MemoryIdentifierLedger
from consumer.metering.usage import MemoryUsageBook
from consumer.metering.verdicts.book import MemoryVerdictBook
from consumer.metering.verdicts.customers import KnownCustomers
from consumer.metering.verdicts.wiring import verdict_parts
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import StripeCredential
from consumer.stripe.calls import StripeCall, StripeResponse
from consumer.stripe.gateway import StripeGateway
from tests.unit.fakes import failure, settings

FOUND = b'{"id": "cus_1", "object": "customer"}'


class CountingLimiter:
    """A rate limiter that admits every call at once and counts them."""

    def __init__(self) -> None:
        self.acquired = 0
        self.slowed = 0

    async def acquire(self) -> float:
        self.acquired += 1
        return 0.0

    def slow_down(self) -> None:
        self.slowed += 1


class Gateway:
    """Stripe's GETs: every customer exists, unless a failure is queued."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.failures = failures or []
        self.paths: list[str] = []

    async def call(
        self,
        call: StripeCall,
        *,
        credential: StripeCredential,
        stripe_account: str | None,
        idempotency_key: str | None,
        stripe_context: str | None = None,
    ) -> StripeResponse:
        self.paths.append(call.path)
        if self.failures:
            raise self.failures.pop(0)
        return StripeResponse(msgspec.Raw(FOUND), "req_1", 200)


class Sink:
    """Where stripe.meter-errors records would go (none are published here)."""

    async def send(self, record: object) -> None:
        raise AssertionError("no record is published")


def event(customer: str) -> CreateMeterEvent:
    request = {"operation": "create_meter_event", "event_name": "api_calls"}
    return msgspec.convert({**request, "customer_id": customer}, CreateMeterEvent)


def customers_of(gateway: Gateway, limiter: CountingLimiter) -> KnownCustomers | None:
    """The known-customer check as the service wires it, with these limiters."""
    parts = verdict_parts(
        settings(CONSUMER_METER_KNOWN_CUSTOMERS_SECONDS="60"),
        gateway=cast(StripeGateway, gateway),
        sink=cast(RecordSink, Sink()),
        book=MemoryVerdictBook(window_seconds=60, max_entries=100),
        ledger=MemoryIdentifierLedger(
            window_seconds=60, lease_seconds=60, max_entries=100, owner="t"
        ),
        metrics=ServiceMetrics(CollectorRegistry()),
        usage=MemoryUsageBook(),
        limiters={"default": limiter},
    )
    return parts.request_side.customers


async def test_known_customer_lookups_wait_for_the_integrations_rate_limit() -> None:
    """Each GET /v1/customers/{id} takes a call of the integration's limiter first; an id
    known already takes none."""
    gateway, limiter = Gateway(), CountingLimiter()
    customers = customers_of(gateway, limiter)
    assert customers is not None
    check = customers.check
    await check(event("cus_1"))
    await check(event("cus_2"))
    await check(event("cus_1"))  # known now: no call
    assert gateway.paths == ["/v1/customers/cus_1", "/v1/customers/cus_2"]
    assert limiter.acquired == 2


async def test_a_429_on_a_lookup_slows_the_limiter_down() -> None:
    """Stripe's 429 on a lookup: the event is still sent unchecked (fail open), and the
    integration's limiter halves as it does for an operation's 429."""
    rate_limited = failure("rate_limit_error", retryable=True)
    gateway, limiter = Gateway([rate_limited]), CountingLimiter()
    customers = customers_of(gateway, limiter)
    assert customers is not None
    await customers.check(event("cus_1"))
    assert (limiter.acquired, limiter.slowed) == (1, 1)

"""The known-customer cache: one lookup per id, missing ids refused naming $.customer_id,
Stripe failures never refuse usage, answers expire and the local cache stays bounded."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from consumer.contract.errors import RequestRejected, StripeFailure
from consumer.contract.reply import ReplyError
from consumer.contract.requests import CreateMeterEvent
from consumer.metering.verdicts.customers import (
    FAIL_OPEN_SECONDS,
    LOOKUPS_AT_ONCE,
    MISSING_SECONDS,
    KnownCustomers,
)

FOUND = b'{"id": "cus_Known", "object": "customer"}'


def event(customer: str, **fields: object) -> CreateMeterEvent:
    return msgspec.convert(
        {
            "operation": "create_meter_event",
            "event_name": "api_calls",
            "customer_id": customer,
            **fields,
        },
        CreateMeterEvent,
    )


def failure(status: int, code: str | None) -> StripeFailure:
    error = ReplyError(type="invalid_request_error", code=code, message="x", http_status=status)
    return StripeFailure(error, category="api_error")


class Stripe:
    """GET /v1/customers/{id}: the ids in `existing` exist, others 404, `failing` raises."""

    def __init__(self, existing: set[str], *, failing: StripeFailure | None = None) -> None:
        self.existing = existing
        self.failing = failing
        self.paths: list[tuple[str, str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, integration: str, path: str) -> bytes:
        self.paths.append((integration, path))
        await self.gate.wait()
        if self.failing is not None:
            raise self.failing
        customer = path.rsplit("/", 1)[1]
        if customer == "cus_Deleted":
            return b'{"id": "cus_Deleted", "object": "customer", "deleted": true}'
        if customer not in self.existing:
            raise failure(404, "resource_missing")
        return FOUND


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(stripe: Stripe, clock: Clock | None = None, max_local: int = 100) -> KnownCustomers:
    return KnownCustomers(
        stripe, None, found_seconds=3600, clock=clock or Clock(), max_local=max_local
    )


async def test_a_known_customer_is_looked_up_once_then_known_locally() -> None:
    """The first event of a customer asks Stripe; later ones take the fast path unasked."""
    stripe = Stripe({"cus_Known"})
    customers = cache(stripe)
    assert not customers.known_locally(event("cus_Known"))
    await customers.check(event("cus_Known"))
    await customers.check(event("cus_Known"))
    assert customers.known_locally(event("cus_Known"))
    assert stripe.paths == [("default", "/v1/customers/cus_Known")]


@pytest.mark.parametrize("customer", ["cus_Never", "cus_Deleted"])
async def test_a_missing_customer_is_refused_naming_the_field(customer: str) -> None:
    """404 resource_missing, or a deleted customer: refused, naming $.customer_id; the answer
    is remembered (no second lookup), never taken as known, and counted `missing`."""
    stripe = Stripe(set())
    results: list[str] = []
    customers = KnownCustomers(stripe, None, found_seconds=3600, counted=results.append)
    for _ in range(2):
        with pytest.raises(RequestRejected) as refused:
            await customers.check(event(customer))
        assert refused.value.detail.param == "$.customer_id"
        assert customer in refused.value.detail.message
    assert len(stripe.paths) == 1
    assert not customers.known_locally(event(customer))
    assert results == ["missing"]


async def test_concurrent_events_of_a_new_customer_share_one_lookup() -> None:
    """100 events of one new customer at once: one GET, every one answered by it."""
    stripe = Stripe(set())
    stripe.gate.clear()
    customers = cache(stripe)
    checks = [asyncio.ensure_future(customers.check(event("cus_New"))) for _ in range(100)]
    await asyncio.sleep(0)
    stripe.gate.set()
    results = await asyncio.gather(*checks, return_exceptions=True)
    assert all(isinstance(r, RequestRejected) for r in results)
    assert len(stripe.paths) == 1


async def test_a_burst_of_new_customers_is_looked_up_a_few_at_a_time() -> None:
    """50 new ids at once: at most LOOKUPS_AT_ONCE GETs in flight; all answered after."""
    stripe = Stripe({f"cus_{i}" for i in range(50)})
    stripe.gate.clear()
    customers = cache(stripe)
    checks = [asyncio.ensure_future(customers.check(event(f"cus_{i}"))) for i in range(50)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(stripe.paths) == LOOKUPS_AT_ONCE
    stripe.gate.set()
    await asyncio.gather(*checks)
    assert len(stripe.paths) == 50


@pytest.mark.parametrize(
    "error",
    [failure(500, None), failure(429, "rate_limit"), failure(401, None), failure(404, None)],
)
async def test_stripe_failing_never_refuses_usage(error: StripeFailure) -> None:
    """An outage, a rate limit, a bad key, a 404 that is not resource_missing: the event is
    sent (fail open), and the id is not asked again until FAIL_OPEN_SECONDS pass."""
    stripe = Stripe(set(), failing=error)
    clock = Clock()
    results: list[str] = []
    customers = KnownCustomers(
        stripe, None, found_seconds=3600, clock=clock, counted=results.append
    )
    await customers.check(event("cus_Whatever"))
    await customers.check(event("cus_Whatever"))
    assert len(stripe.paths) == 1
    assert results == ["failed"]
    clock.now += FAIL_OPEN_SECONDS + 1
    await customers.check(event("cus_Whatever"))
    assert len(stripe.paths) == 2


async def test_answers_expire_missing_ones_soon() -> None:
    """A missing id is asked again after MISSING_SECONDS (it may have been created since);
    a found one only after the setting's seconds."""
    stripe = Stripe({"cus_Known"})
    clock = Clock()
    customers = cache(stripe, clock)
    await customers.check(event("cus_Known"))
    with pytest.raises(RequestRejected):
        await customers.check(event("cus_Later"))
    stripe.existing.add("cus_Later")
    clock.now += MISSING_SECONDS + 1
    await customers.check(event("cus_Later"))  # created meanwhile: now sent
    await customers.check(event("cus_Known"))
    assert len(stripe.paths) == 3
    clock.now += 3600
    await customers.check(event("cus_Known"))
    assert len(stripe.paths) == 4


async def test_the_local_cache_is_bounded() -> None:
    """Beyond max_local ids the least recently used is forgotten (asked again)."""
    stripe = Stripe({f"cus_{i}" for i in range(4)})
    customers = cache(stripe, max_local=3)
    for i in range(4):
        await customers.check(event(f"cus_{i}"))
    assert not customers.known_locally(event("cus_0"))
    assert customers.known_locally(event("cus_3"))


async def test_integrations_and_connected_accounts() -> None:
    """Ids are looked up with their own integration's key; a connected account's event is
    not checked (its customers are not the platform's)."""
    stripe = Stripe(set())
    customers = cache(stripe)
    connected = event("cus_Theirs", stripe_account="acct_1Connected")
    assert customers.known_locally(connected)
    await customers.check(connected)
    with pytest.raises(RequestRejected):
        await customers.check(event("cus_Other", integration="billing"))
    assert stripe.paths == [("billing", "/v1/customers/cus_Other")]

"""Claim leases against real Redis, a single one and a three-primary cluster: a claim whose
batch is still out is renewed, so another replica cannot claim it past its lease; a claim
lost before the send is never sent; every lost claim is counted by reason (another owner's
now, or expired) and logged once per batch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from consumer.metering.batcher import MeterEventBatcher
from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.ledgers.protocol import ClaimState, LedgerScope, Renewal
from consumer.metering.ledgers.redis import RedisIdentifierLedger
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import StripeCredential
from consumer.shared_state.redis_client import RedisConnection, SharedStateUnavailable
from tests.integration.test_ledger_layout import (  # the single/cluster fixtures
    SCOPE,
    Connect,
    connect,
    redis_url,
)
from tests.unit.fakes import settings

pytestmark = pytest.mark.integration
__all__ = ["connect", "redis_url"]  # fixtures, used by name
# Renewals every second leave 2 s of slack: a CI run once saw a 1.5 s lease run out between
# two renewals 0.5 s apart (every claim gone at once: a stall of the whole process).
LEASE = 3.0
CLAIMED, DELIVERED, PENDING = ClaimState.CLAIMED, ClaimState.DELIVERED, ClaimState.PENDING
HELD, GONE, TAKEN = Renewal.HELD, Renewal.GONE, Renewal.TAKEN


def ledger(connection: RedisConnection, owner: str) -> RedisIdentifierLedger:
    return RedisIdentifierLedger(
        connection,
        window_seconds=3600, lease_seconds=LEASE, owner=owner, events_per_second=5,
    )  # fmt: skip


def event(identifier: str) -> MeterEvent:
    credential = settings().credentials["default"]
    payload = {"stripe_customer_id": "cus_1", "value": "1"}
    return MeterEvent(SCOPE, credential, "api_requests", identifier, payload, None, identifier)


class SlowTransport:
    """Stripe taking ``seconds`` to answer each batch; records what it was sent."""

    name = "v2_stream"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sent: list[str] = []
        self.out = asyncio.Event()  # a batch was sent

    async def send(
        self, scope: LedgerScope, credential: StripeCredential, events: Sequence[MeterEvent]
    ) -> list[MeterResult]:
        self.sent += [e.identifier for e in events]
        self.out.set()
        await asyncio.sleep(self.seconds)
        return [MeterResult("delivered", attempts=1)] * len(events)


def batcher(
    transport: SlowTransport, on: RedisIdentifierLedger, metrics: ServiceMetrics | None = None
) -> MeterEventBatcher:
    metrics = metrics or ServiceMetrics(CollectorRegistry())
    return MeterEventBatcher(
        transport, on, metrics, linger_seconds=0.01, pending_recheck_seconds=0.05,
        lease_seconds=LEASE,
    )  # fmt: skip


async def test_renew_extends_only_the_owners_claims(connect: Connect) -> None:
    """Renewing keeps a claim past its lease for its owner; another owner's renew neither
    holds nor extends it (it says TAKEN), and an unrenewed claim expires (GONE while nobody
    holds it, TAKEN once another owner claimed it)."""
    one, two = ledger(connect(), "one"), ledger(connect(), "two")
    await one.claim(SCOPE, ["warm-up"])  # each connection learns the cluster's nodes first
    await two.claim(SCOPE, ["warm-up"])
    ids = [f"evt-{i}" for i in range(40)]  # across many cluster slots
    assert await one.claim(SCOPE, ids) == [CLAIMED] * 40

    stop = asyncio.Event()

    async def renewing() -> None:  # the owner, every third of the lease, until told to stop
        while not stop.is_set():  # (a cancel landing in a Redis call's timeout can be lost)
            assert await one.renew(SCOPE, ids) == [HELD] * 40
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LEASE / 3)

    renewer = asyncio.create_task(renewing())
    deadline = time.monotonic() + 3 * LEASE
    while time.monotonic() < deadline:
        assert await two.renew(SCOPE, ids) == [TAKEN] * 40
        assert await two.claim(SCOPE, ids) == [PENDING] * 40
        await asyncio.sleep(LEASE / 3)
    stop.set()
    await renewer  # raises its assertion if a renewal found a claim gone
    while await two.renew(SCOPE, ids) != [GONE] * 40:  # no renewal now: they run out
        assert time.monotonic() < deadline + 5 * LEASE, "an unrenewed claim never expired"
        await asyncio.sleep(0.05)
    assert await two.claim(SCOPE, ids[:1]) == [CLAIMED]
    assert await one.renew(SCOPE, ids[:2]) == [TAKEN, GONE]  # two's now; nobody's
    assert await two.renew(SCOPE, ids[:1]) == [HELD]  # one's renew left two's claim alone


async def test_a_batch_sent_longer_than_the_lease_keeps_its_claims(connect: Connect) -> None:
    """A send taking three leases: another replica finds the identifiers pending throughout
    (never claims them), then delivered; Stripe got them once."""
    transport = SlowTransport(3 * LEASE)
    mine, other = ledger(connect(), "mine"), ledger(connect(), "other")
    ids = [f"slow-{i}" for i in range(20)]
    sender = batcher(transport, mine)
    results = asyncio.gather(*(sender.deliver(event(i)) for i in ids))
    await asyncio.wait_for(transport.out.wait(), timeout=10)
    assert sorted(transport.sent) == sorted(ids)  # one batch
    while not results.done():
        with contextlib.suppress(SharedStateUnavailable):  # a blip of the shared Redis
            assert set(await other.claim(SCOPE, ids)) <= {PENDING, DELIVERED}
        await asyncio.sleep(0.05)
    assert {r.status for r in await results} == {"delivered"}
    assert await other.claim(SCOPE, ids) == [DELIVERED] * len(ids)
    assert sorted(transport.sent) == sorted(ids)


async def take_when_expired(
    taker: RedisIdentifierLedger, scope: LedgerScope, identifiers: Sequence[str]
) -> None:
    """The taker polls until the claims ran out, takes the first identifier, and waits
    until the others are gone too (their leases end a few milliseconds apart)."""
    deadline = time.monotonic() + 5 * LEASE

    async def answers(call: Awaitable[list[Any]]) -> set[Any]:
        with contextlib.suppress(SharedStateUnavailable):  # a blip of the shared Redis
            return set(await call)
        return {None}

    while await answers(taker.claim(scope, identifiers[:1])) != {CLAIMED}:
        assert time.monotonic() < deadline, "the claim never ran out"
        await asyncio.sleep(0.05)
    while await answers(taker.renew(scope, identifiers[1:])) - {GONE}:  # read only
        assert time.monotonic() < deadline, "the other claims never ran out"
        await asyncio.sleep(0.05)


def lost(metrics: ServiceMetrics) -> dict[str, float]:
    """stripe_consumer_meter_claims_lost_total by reason."""
    return {
        sample.labels["reason"]: sample.value
        for metric in metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "stripe_consumer_meter_claims_lost_total"
    }


class SlowClaimLedger(RedisIdentifierLedger):
    """A claim whose answer arrives after its lease ran out (a loaded machine), by when
    another replica took the first identifier."""

    def __init__(self, connection: RedisConnection, taker: RedisIdentifierLedger) -> None:
        super().__init__(
            connection,
            window_seconds=3600, lease_seconds=LEASE, owner="slow", events_per_second=5,
        )  # fmt: skip
        self.taker = taker
        self.taken = asyncio.Event()

    async def claim(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[ClaimState]:
        states = await super().claim(scope, identifiers)
        if not self.taken.is_set():
            await take_when_expired(self.taker, scope, identifiers)
            self.taken.set()
        return states


async def test_a_claim_lost_before_the_send_is_not_sent(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """Claims that ran out before the batch went: the one another replica took is not sent
    from here; once that replica settles it, it answers deduplicated; the rest go once.
    Counted by reason, in one warning for the batch."""
    taker = ledger(connect(), "taker")
    slow = SlowClaimLedger(connect(), taker)
    transport = SlowTransport(0.01)
    metrics = ServiceMetrics(CollectorRegistry())
    sender = batcher(transport, slow, metrics)
    ids = [f"lost-{i}" for i in range(10)]
    with caplog.at_level(logging.WARNING, logger="stripe_consumer"):
        results = asyncio.gather(*(sender.deliver(event(i)) for i in ids))
        await asyncio.wait_for(slow.taken.wait(), timeout=10 * LEASE)
        await taker.mark_delivered(SCOPE, ids[:1])  # the taker sent it
        answered = await asyncio.wait_for(results, timeout=10 * LEASE)
    assert [r.status for r in answered] == ["deduplicated"] + ["delivered"] * 9
    assert sorted(transport.sent) == sorted(ids[1:])
    assert lost(metrics) == {"another_owner": 1, "expired": 9}
    warnings = [r for r in caplog.records if r.message.startswith("meter event claims ran out")]
    assert [(vars(r)["lost_before_send"], vars(r)["lost_while_out"]) for r in warnings] == [
        ({"another_owner": 1, "expired": 9}, {})
    ]


class StalledRenewal(RedisIdentifierLedger):
    """The first renewal while the batch is out stalls past the lease (a stalled process),
    by when another replica took the first identifier."""

    def __init__(
        self, connection: RedisConnection, taker: RedisIdentifierLedger, out: asyncio.Event
    ) -> None:
        super().__init__(
            connection,
            window_seconds=3600, lease_seconds=LEASE, owner="stalled", events_per_second=5,
        )  # fmt: skip
        self.taker = taker
        self.out = out
        self.stalled = False

    async def renew(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[Renewal]:
        if self.out.is_set() and not self.stalled:
            self.stalled = True
            await take_when_expired(self.taker, scope, identifiers)
        return await super().renew(scope, identifiers)


async def test_a_claim_lost_while_the_batch_is_out_is_counted_and_logged_once(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal stalled past the lease while the batch is at Stripe: the claim another
    replica took is counted `another_owner`, the nine that ran out `expired`, and the batch
    logs one warning naming both (its events were sent before the loss: delivered)."""
    taker = ledger(connect(), "taker")
    transport = SlowTransport(2 * LEASE)
    stalled = StalledRenewal(connect(), taker, transport.out)
    metrics = ServiceMetrics(CollectorRegistry())
    sender = batcher(transport, stalled, metrics)
    ids = [f"out-{i}" for i in range(10)]
    with caplog.at_level(logging.WARNING, logger="stripe_consumer"):
        results = asyncio.gather(*(sender.deliver(event(i)) for i in ids))
        answered = await asyncio.wait_for(results, timeout=10 * LEASE)
    assert {r.status for r in answered} == {"delivered"}
    assert stalled.stalled
    assert lost(metrics) == {"another_owner": 1, "expired": 9}
    warnings = [r for r in caplog.records if r.message.startswith("meter event claims ran out")]
    assert [(vars(r)["lost_before_send"], vars(r)["lost_while_out"]) for r in warnings] == [
        ({}, {"another_owner": 1, "expired": 9})
    ]

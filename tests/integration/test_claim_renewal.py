"""Claim leases against real Redis, a single one and a three-primary cluster: a claim whose
batch is still out is renewed, so another replica cannot claim it past its lease, and a
claim lost before the send is never sent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from consumer.metering.batcher import MeterEventBatcher
from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.ledgers.protocol import ClaimState, LedgerScope
from consumer.metering.ledgers.redis import RedisIdentifierLedger
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import StripeCredential
from consumer.shared_state.redis_client import RedisConnection
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


def batcher(transport: SlowTransport, on: RedisIdentifierLedger) -> MeterEventBatcher:
    metrics = ServiceMetrics(CollectorRegistry())
    return MeterEventBatcher(
        transport, on, metrics, linger_seconds=0.01, pending_recheck_seconds=0.05,
        lease_seconds=LEASE,
    )  # fmt: skip


async def test_renew_extends_only_the_owners_claims(connect: Connect) -> None:
    """Renewing keeps a claim past its lease for its owner; another owner's renew neither
    holds nor extends it, and an unrenewed claim expires."""
    one, two = ledger(connect(), "one"), ledger(connect(), "two")
    await one.claim(SCOPE, ["warm-up"])  # each connection learns the cluster's nodes first
    await two.claim(SCOPE, ["warm-up"])
    ids = [f"evt-{i}" for i in range(40)]  # across many cluster slots
    assert await one.claim(SCOPE, ids) == [CLAIMED] * 40

    stop = asyncio.Event()

    async def renewing() -> None:  # the owner, every third of the lease, until told to stop
        while not stop.is_set():  # (a cancel landing in a Redis call's timeout can be lost)
            assert await one.renew(SCOPE, ids) == [True] * 40
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LEASE / 3)

    renewer = asyncio.create_task(renewing())
    deadline = time.monotonic() + 3 * LEASE
    while time.monotonic() < deadline:
        assert await two.renew(SCOPE, ids) == [False] * 40
        assert await two.claim(SCOPE, ids) == [PENDING] * 40
        await asyncio.sleep(LEASE / 3)
    stop.set()
    await renewer  # raises its assertion if a renewal found a claim gone
    while await two.claim(SCOPE, ids[:1]) != [CLAIMED]:  # no renewal now: it runs out
        assert time.monotonic() < deadline + 5 * LEASE, "an unrenewed claim never expired"
        await asyncio.sleep(0.05)
    assert await one.renew(SCOPE, ids[:1]) == [False]  # two's now


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
        assert set(await other.claim(SCOPE, ids)) <= {PENDING, DELIVERED}
        await asyncio.sleep(0.05)
    assert {r.status for r in await results} == {"delivered"}
    assert await other.claim(SCOPE, ids) == [DELIVERED] * len(ids)
    assert sorted(transport.sent) == sorted(ids)


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
            await self.take_when_expired(scope, identifiers[0])
            self.taken.set()
        return states

    async def take_when_expired(self, scope: LedgerScope, identifier: str) -> None:
        """The taker polls until this claim ran out and it could take the identifier."""
        deadline = time.monotonic() + 5 * LEASE
        while await self.taker.claim(scope, [identifier]) != [CLAIMED]:
            assert time.monotonic() < deadline, "the claim never ran out"
            await asyncio.sleep(0.05)


async def test_a_claim_lost_before_the_send_is_not_sent(connect: Connect) -> None:
    """Claims that ran out before the batch went: the one another replica took is not sent
    from here; once that replica settles it, it answers deduplicated; the rest go once."""
    taker = ledger(connect(), "taker")
    slow = SlowClaimLedger(connect(), taker)
    transport = SlowTransport(0.01)
    sender = batcher(transport, slow)
    ids = [f"lost-{i}" for i in range(10)]
    results = asyncio.gather(*(sender.deliver(event(i)) for i in ids))
    await asyncio.wait_for(slow.taken.wait(), timeout=10)
    await taker.mark_delivered(SCOPE, ids[:1])  # the taker sent it
    answered = await asyncio.wait_for(results, timeout=10)
    assert [r.status for r in answered] == ["deduplicated"] + ["delivered"] * 9
    assert sorted(transport.sent) == sorted(ids[1:])

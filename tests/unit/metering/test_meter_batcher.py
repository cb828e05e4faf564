"""The batcher: full batches go at once, small ones after the linger; each identifier is
sent once; transient failures retry the same identifiers; terminal ones are answered."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
from prometheus_client import CollectorRegistry

from consumer.contract.errors import StripeFailure
from consumer.contract.reply import ReplyError
from consumer.metering.batcher import UNEXPECTED_ATTEMPTS, MeterEventBatcher
from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.ledgers.memory import MemoryIdentifierLedger
from consumer.metering.ledgers.protocol import ClaimState, LedgerScope
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import StripeCredential
from consumer.stripe.credential_gate import CredentialHeld
from tests.unit.fakes import settings

SCOPE = LedgerScope("default", None)
CREDENTIAL = settings().credentials["default"]


def event(identifier: str) -> MeterEvent:
    return MeterEvent(
        SCOPE,
        CREDENTIAL,
        "api_requests",
        identifier,
        {"stripe_customer_id": "cus_1", "value": "1"},
        None,
        f"key-{identifier}",
    )


class Transport:
    name = "v2_stream"

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.failures = failures or []

    async def send(
        self, scope: LedgerScope, credential: StripeCredential, events: Sequence[MeterEvent]
    ) -> list[MeterResult]:
        await asyncio.sleep(0.001)
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append([e.identifier for e in events])
        return [MeterResult("delivered", attempts=1)] * len(events)


def submitted(b: MeterEventBatcher, e: MeterEvent) -> asyncio.Future[MeterResult]:
    """The event's result as a future (the batcher calls back with it)."""
    future: asyncio.Future[MeterResult] = asyncio.get_running_loop().create_future()
    b.submit(e, future.set_result)
    return future


def failure(retryable: bool) -> StripeFailure:
    return StripeFailure(
        ReplyError(type="api_error", message="x", retryable=retryable), category="api_error"
    )


def batcher(
    transport: Transport, ledger: MemoryIdentifierLedger | None = None, linger: float = 0.01
) -> MeterEventBatcher:
    if (
        ledger is None
    ):  # not `ledger or ...`: an empty MemoryIdentifierLedger is falsy (it has a length)
        ledger = MemoryIdentifierLedger(
            window_seconds=3600, lease_seconds=60, max_entries=10_000, owner="me"
        )
    return MeterEventBatcher(
        transport,
        ledger,
        ServiceMetrics(CollectorRegistry()),
        linger_seconds=linger,
        pending_recheck_seconds=0.01,
        max_backoff_seconds=0.02,
    )


async def test_full_batches_go_at_once_and_the_rest_after_the_linger() -> None:
    """250 events: two batches of 100 immediately, the last 50 after the linger."""
    transport = Transport()
    b = batcher(transport, linger=0.05)
    futures = [submitted(b, event(f"e{i}")) for i in range(250)]
    await asyncio.sleep(0.02)
    assert [len(x) for x in transport.batches] == [100, 100]
    results = await asyncio.gather(*futures)
    assert [len(x) for x in transport.batches] == [100, 100, 50]
    assert {r.status for r in results} == {"delivered"}


async def test_duplicates_in_this_process_share_one_send() -> None:
    """The same identifier submitted twice: one send, the second answered as deduplicated."""
    transport = Transport()
    b = batcher(transport)
    first, second = submitted(b, event("dup")), submitted(b, event("dup"))
    assert (await first).status == "delivered"
    assert (await second).status == "deduplicated"
    assert transport.batches == [["dup"]]


async def test_identifier_delivered_before_is_not_sent() -> None:
    """The ledger says delivered: answered at once, nothing sent."""
    ledger = MemoryIdentifierLedger(
        window_seconds=3600, lease_seconds=60, max_entries=100, owner="me"
    )
    await ledger.claim(SCOPE, ["old"])
    await ledger.mark_delivered(SCOPE, ["old"])
    transport = Transport()
    result = await submitted(batcher(transport, ledger), event("old"))
    assert result.status == "deduplicated"
    assert transport.batches == []


async def test_identifier_held_elsewhere_waits_until_delivered_there() -> None:
    """Another replica holds the claim: wait, then answer deduplicated once it delivered."""
    ledger = MemoryIdentifierLedger(
        window_seconds=3600, lease_seconds=60, max_entries=100, owner="me"
    )
    other = ledger  # same store, another holder: claim as if another replica did
    await other.claim(SCOPE, ["shared"])
    transport = Transport()
    future = submitted(batcher(transport, ledger), event("shared"))
    await asyncio.sleep(0.05)
    assert not future.done()
    await other.mark_delivered(SCOPE, ["shared"])
    assert (await asyncio.wait_for(future, 1)).status == "deduplicated"
    assert transport.batches == []


async def test_transient_failure_retries_the_same_identifiers_until_accepted() -> None:
    """A 5xx storm: the batch goes again (same identifiers) until Stripe accepts it."""
    transport = Transport(failures=[failure(retryable=True)] * 3)
    b = batcher(transport)
    results = await asyncio.wait_for(
        asyncio.gather(*(submitted(b, event(f"t{i}")) for i in range(5))), 5
    )
    assert {r.status for r in results} == {"delivered"}
    sent = sorted(identifier for batch in transport.batches for identifier in batch)
    assert sent == [f"t{i}" for i in range(5)]  # each once, after the failures


async def test_unexpected_error_in_sending_retries_instead_of_stranding_events() -> None:
    """A bug in the send path (not Stripe's answer) retries the batch: its events are never
    left unanswered, which would hold their partitions' offsets for ever."""
    transport = Transport(failures=[KeyError("surprise")])
    b = batcher(transport)
    result = await asyncio.wait_for(submitted(b, event("u")), 5)
    assert result.status == "delivered"
    assert transport.batches == [["u"]]


async def test_unexpected_error_every_time_is_answered_failed_after_bounded_retries() -> None:
    """A bug on every send: the same identifier is tried UNEXPECTED_ATTEMPTS times with the
    backoff, then answered failed for good (not retryable: reply or DLQ, not retried for
    ever), counted by outcome; its claim is released, so a later copy is sent once."""
    transport = Transport(failures=[RuntimeError("bug")] * UNEXPECTED_ATTEMPTS)
    registry = CollectorRegistry()
    b = MeterEventBatcher(
        transport,
        MemoryIdentifierLedger(window_seconds=3600, lease_seconds=60, max_entries=100, owner="me"),
        ServiceMetrics(registry),
        linger_seconds=0.001,
        max_backoff_seconds=0.02,
    )
    result = await asyncio.wait_for(submitted(b, event("bug")), 5)
    assert result.status == "failed"
    assert result.failure is not None
    assert result.failure.retryable is False
    assert "internal error" in result.failure.detail.message
    assert transport.failures == []  # every attempt was made, none sent
    sent = "stripe_consumer_meter_send_errors_total"
    assert registry.get_sample_value(sent, {"outcome": "retried"}) == UNEXPECTED_ATTEMPTS - 1
    assert registry.get_sample_value(sent, {"outcome": "failed"}) == 1
    assert (await asyncio.wait_for(submitted(b, event("bug")), 5)).status == "delivered"
    assert transport.batches == [["bug"]]


async def test_delivered_events_are_counted_by_the_api_that_took_them() -> None:
    """`meter_events_total{api}` follows each result's endpoint (v1 after a fallback)."""

    class Fallen(Transport):
        async def send(
            self, scope: LedgerScope, credential: StripeCredential, events: Sequence[MeterEvent]
        ) -> list[MeterResult]:
            return [MeterResult("delivered", api="v1")] * len(events)

    registry = CollectorRegistry()
    ledger = MemoryIdentifierLedger(
        window_seconds=3600, lease_seconds=60, max_entries=100, owner="me"
    )
    b = MeterEventBatcher(Fallen(), ledger, ServiceMetrics(registry), linger_seconds=0.01)
    await asyncio.gather(*(submitted(b, event(f"f{i}")) for i in range(4)))
    assert registry.get_sample_value("stripe_consumer_meter_events_total", {"api": "v1"}) == 4
    assert registry.get_sample_value(
        "stripe_consumer_meter_events_total", {"api": "v2_stream"}
    ) in (None, 0)


async def test_terminal_failure_is_answered_and_releases_the_claims() -> None:
    """Refused for good: each event is answered failed, and its identifier is free again."""
    ledger = MemoryIdentifierLedger(
        window_seconds=3600, lease_seconds=60, max_entries=100, owner="me"
    )
    transport = Transport(failures=[failure(retryable=False)])
    result = await submitted(batcher(transport, ledger), event("bad"))
    assert result.status == "failed"
    assert result.failure is not None
    assert not result.failure.retryable
    assert await ledger.claim(SCOPE, ["bad"]) == [ClaimState.CLAIMED]


async def test_rejected_key_answers_held_at_once_and_releases_the_claims() -> None:
    """Stripe rejects the key (CredentialHeld): the events and their duplicates are answered
    `held` at once, not retried here (they wait outside the batcher's slots), and their
    identifiers are free to be claimed when they come back."""
    ledger = MemoryIdentifierLedger(
        window_seconds=3600, lease_seconds=60, max_entries=100, owner="me"
    )
    transport = Transport(failures=[CredentialHeld("default")])
    b = batcher(transport, ledger)
    first, duplicate = submitted(b, event("held-1")), submitted(b, event("held-1"))
    results = await asyncio.wait_for(asyncio.gather(first, duplicate), 1)
    assert [r.status for r in results] == ["held", "held"]
    await asyncio.sleep(0.05)  # longer than the batcher's backoff: nothing retried
    assert transport.batches == []
    assert await ledger.claim(SCOPE, ["held-1"]) == [ClaimState.CLAIMED]


async def test_accounts_gone_quiet_leave_no_queue_behind() -> None:
    """Events for 2,000 connected accounts, one each: once sent, no per-account queue or
    timer is left (a producer cycling through accounts cannot grow the batcher)."""
    transport = Transport()
    b = batcher(transport)
    futures = []
    for i in range(2_000):
        scope = LedgerScope("default", f"acct_{i}")
        e = event(f"id-{i}")
        futures.append(submitted(b, MeterEvent(scope, *msgspec.structs.astuple(e)[1:])))
    assert b.accounts_queued == 2_000
    results = await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert {r.status for r in results} == {"delivered"}
    assert b.accounts_queued == 0


async def test_ledger_outage_never_sends_unclaimed() -> None:
    """If the ledger cannot be reached, nothing is sent until it can."""

    class Flaky(MemoryIdentifierLedger):
        down = True

        async def claim(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[ClaimState]:
            if self.down:
                raise ConnectionError("redis down")
            return await super().claim(scope, identifiers)

    ledger = Flaky(window_seconds=3600, lease_seconds=60, max_entries=100, owner="me")
    transport = Transport()
    future = submitted(batcher(transport, ledger), event("x"))
    await asyncio.sleep(0.1)
    assert transport.batches == []
    ledger.down = False
    assert (await asyncio.wait_for(future, 2)).status == "delivered"


async def test_close_flushes_what_is_queued() -> None:
    """On shutdown, queued events go out without waiting for the linger."""
    transport = Transport()
    b = batcher(transport, linger=10)
    future = submitted(b, event("late"))
    assert await b.close(timeout_s=2)
    assert (await future).status == "delivered"


async def test_withdraw_takes_back_events_not_started_and_keeps_the_sending_batch() -> None:
    """Events whose batch holds a sending slot are started and are answered; queued ones
    (waiting for a slot) are withdrawn: never sent, never answered; a duplicate of another
    owner stays and is sent."""
    entered, release = asyncio.Event(), asyncio.Event()

    class Gated(Transport):
        async def send(
            self, scope: LedgerScope, credential: StripeCredential, events: Sequence[MeterEvent]
        ) -> list[MeterResult]:
            entered.set()
            await release.wait()
            return await super().send(scope, credential, events)

    transport = Gated()
    b = MeterEventBatcher(
        transport,
        MemoryIdentifierLedger(window_seconds=3600, lease_seconds=60, max_entries=100, owner="me"),
        ServiceMetrics(CollectorRegistry()),
        batch_size=2,
        concurrency=1,
    )
    answered: dict[str, list[str]] = {}

    def submit(identifier: str, owner: str) -> None:
        b.submit(
            event(identifier),
            lambda result: answered.setdefault(owner, []).append(result.status),
            owner,
        )

    for i in range(6):  # three full batches: the first takes the one slot
        submit(f"e{i}", f"revoked-{i}")
    submit("e5", "kept-5")  # the same identifier from a partition that stays
    await asyncio.wait_for(entered.wait(), 2)  # the first batch is at Stripe
    withdrawn = b.withdraw(lambda owner: str(owner).startswith("revoked"))
    assert sorted(map(str, withdrawn)) == [f"revoked-{i}" for i in range(2, 6)]
    release.set()
    assert await b.close(timeout_s=2)
    assert transport.batches == [["e0", "e1"], ["e5"]]
    assert answered == {
        "revoked-0": ["delivered"],
        "revoked-1": ["delivered"],
        "kept-5": ["delivered"],
    }

"""The v2 stream transport: a refused session token is retried with a new session, a rejected
API key holds the lane at the credential gate, and a batch the stream refuses for good goes
through the v1 endpoint instead of failing its events."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from consumer.contract.errors import StripeFailure
from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.sessions import ExecutorSessionCreator, MeterEventSessions
from consumer.metering.transports import STREAM_UNEXPECTED_BEFORE_FALLBACK, StreamTransport
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import StripeCredential
from consumer.stripe.credential_gate import CredentialGate, CredentialHeld
from consumer.stripe.executor import StripeCallExecutor
from consumer.stripe.object_locks import ObjectLocks
from consumer.stripe.rate_limit import RateLimiter
from consumer.stripe.retry import RetryPolicy
from tests.unit.fakes import FakeStripe, failure, settings

SCOPE = LedgerScope("default", None)
CREDENTIAL = settings().credentials["default"]
EVENTS = [
    MeterEvent(SCOPE, CREDENTIAL, "api_requests", f"id-{i}", {"value": "1"}, None, f"k-{i}")
    for i in range(3)
]


class Sender:
    """The stream endpoint: records batches, or raises the failures queued for it."""

    def __init__(self, failures: Sequence[Exception] = ()) -> None:
        self.failures = list(failures)
        self.tokens: list[str] = []

    async def send_meter_event_stream(self, *, token: str, events: list[dict[str, object]]) -> None:
        self.tokens.append(token)
        if self.failures:
            raise self.failures.pop(0)


class Sessions:
    def __init__(self) -> None:
        self.created = 0

    async def create_meter_event_session(
        self, *, credential: StripeCredential, stripe_account: str | None
    ) -> tuple[str, float]:
        self.created += 1
        return f"token-{self.created}", 1e12


class V1:
    name = "v1"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def send(
        self, scope: LedgerScope, credential: StripeCredential, events: Sequence[MeterEvent]
    ) -> list[MeterResult]:
        self.batches.append([e.identifier for e in events])
        return [MeterResult("delivered", api="v1")] * len(events)


def transport(sender: Sender, v1: V1, clock: list[float]) -> tuple[StreamTransport, Sessions]:
    sessions = Sessions()
    stream = StreamTransport(
        sender,
        MeterEventSessions(sessions),
        fallback=v1,
        fallback_seconds=300,
        clock=lambda: clock[0],
    )
    return stream, sessions


async def test_batch_goes_on_the_stream_and_reports_its_api() -> None:
    """A healthy batch is one stream request; each event says the stream delivered it."""
    sender, v1 = Sender(), V1()
    stream, _ = transport(sender, v1, [0.0])
    results = await stream.send(SCOPE, CREDENTIAL, EVENTS)
    assert [(r.status, r.api) for r in results] == [("delivered", "v2_stream")] * 3
    assert sender.tokens == ["token-1"]
    assert v1.batches == []


@pytest.mark.parametrize("category", ["temporary_session_expired", "authentication_error"])
async def test_refused_token_drops_the_session_and_is_retryable(category: str) -> None:
    """An expired or refused token is not the events' fault: the batch is retried (by the
    batcher) and the retry gets a new session."""
    refused = failure(category, retryable=False, authentication=category == "authentication_error")
    sender, v1 = Sender([refused]), V1()
    stream, sessions = transport(sender, v1, [0.0])
    with pytest.raises(StripeFailure) as caught:
        await stream.send(SCOPE, CREDENTIAL, EVENTS)
    assert caught.value.retryable is True
    await stream.send(SCOPE, CREDENTIAL, EVENTS)
    assert sender.tokens == ["token-1", "token-2"]
    assert sessions.created == 2
    assert v1.batches == []


async def test_transient_stream_failure_is_raised_for_the_batcher_to_retry() -> None:
    """A 5xx on the stream stays a retryable failure of the whole batch, not a fallback."""
    sender, v1 = Sender([failure("api_error", retryable=True)]), V1()
    stream, _ = transport(sender, v1, [0.0])
    with pytest.raises(StripeFailure):
        await stream.send(SCOPE, CREDENTIAL, EVENTS)
    assert v1.batches == []


async def test_stream_refusing_for_good_falls_back_to_v1_for_a_while() -> None:
    """A batch the stream refuses terminally is sent through v1 (each event answered on its
    own), and so is the account's traffic for the fallback period; then the stream again."""
    clock = [0.0]
    sender, v1 = Sender([failure("permission_error", retryable=False)]), V1()
    stream, _ = transport(sender, v1, clock)
    results = await stream.send(SCOPE, CREDENTIAL, EVENTS)
    assert [(r.status, r.api) for r in results] == [("delivered", "v1")] * 3
    clock[0] = 299.0
    await stream.send(SCOPE, CREDENTIAL, EVENTS[:1])
    assert v1.batches == [["id-0", "id-1", "id-2"], ["id-0"]]
    assert len(sender.tokens) == 1
    clock[0] = 301.0
    results = await stream.send(SCOPE, CREDENTIAL, EVENTS[:1])
    assert results[0].api == "v2_stream"
    assert len(sender.tokens) == 2


async def test_unexpected_errors_on_the_stream_take_the_v1_path_after_a_few() -> None:
    """A bug in the stream's path: raised for the batcher to retry, and the account's third
    in a row sends the batch through v1 (as a refusal for good does); a success between
    them starts the count again."""
    clock = [0.0]
    bug = RuntimeError("a bug in the stream's path")
    sender, v1 = Sender([bug, bug, bug]), V1()
    stream, _ = transport(sender, v1, clock)
    for _ in range(STREAM_UNEXPECTED_BEFORE_FALLBACK - 1):
        with pytest.raises(RuntimeError):
            await stream.send(SCOPE, CREDENTIAL, EVENTS)
    assert v1.batches == []
    results = await stream.send(SCOPE, CREDENTIAL, EVENTS)
    assert [(r.status, r.api) for r in results] == [("delivered", "v1")] * 3
    assert stream.accounts_falling_back == 1

    again, v1_again = Sender([bug, bug]), V1()
    other, _ = transport(again, v1_again, clock)
    for _ in range(2):  # two bugs, a success, two bugs: never three in a row
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await other.send(SCOPE, CREDENTIAL, EVENTS)
        assert (await other.send(SCOPE, CREDENTIAL, EVENTS))[0].api == "v2_stream"
        again.failures += [bug, bug]
    assert v1_again.batches == []


async def test_fallback_state_of_many_accounts_stays_bounded_and_expires() -> None:
    """Accounts whose stream refused a batch are remembered for the fallback period only,
    and at most `max_fallbacks` at once: cycling through 1,000 accounts leaves a bounded
    map, and once the period is over the next fallback drops the expired ones."""
    clock = [0.0]
    sender, v1 = Sender([failure("permission_error", retryable=False)] * 1_001), V1()
    stream = StreamTransport(
        sender,
        MeterEventSessions(Sessions()),
        fallback=v1,
        fallback_seconds=300,
        clock=lambda: clock[0],
        max_fallbacks=50,
    )
    for i in range(1_000):
        await stream.send(LedgerScope("default", f"acct_{i}"), CREDENTIAL, EVENTS[:1])
        assert stream.accounts_falling_back <= 50
    clock[0] = 301.0
    await stream.send(LedgerScope("default", "acct_new"), CREDENTIAL, EVENTS[:1])
    assert stream.accounts_falling_back == 1


def session_executor(stripe: FakeStripe, registry: CollectorRegistry) -> StripeCallExecutor:
    stripe.body = lambda _: {
        "authentication_token": "mes_token",
        "expires_at": "2030-01-01T00:00:00Z",
    }
    return StripeCallExecutor(
        stripe,
        ServiceMetrics(registry),
        retry=RetryPolicy(budget_seconds=0),
        limiters={"default": RateLimiter(1000)},
        locks=ObjectLocks(),
        gate=CredentialGate(probe_interval_seconds=0.05),
    )


async def test_rejected_key_holds_session_creation_without_waiting_in_a_slot() -> None:
    """Sessions are created through the executor: a 401 on the API key closes the gate and
    the creation raises CredentialHeld at once (the pipeline holds the events outside the
    batcher's slots), readiness and the metric say so; once a probe finds the key works,
    a session is created."""
    registry = CollectorRegistry()
    rejected = failure(
        "authentication_error", retryable=False, authentication=True, http_status=401
    )
    stripe = FakeStripe(failures=[rejected, rejected])
    executor = session_executor(stripe, registry)
    creator = ExecutorSessionCreator(executor)
    with pytest.raises(CredentialHeld):
        await asyncio.wait_for(
            creator.create_meter_event_session(credential=CREDENTIAL, stripe_account=None), 1
        )
    assert executor.gate.rejected() == {"default"}
    assert (
        registry.get_sample_value("stripe_consumer_credential_rejected", {"integration": "default"})
        == 1
    )
    opened = asyncio.Event()
    executor.gate.listen(lambda _, rejected: None if rejected else opened.set())
    await asyncio.wait_for(opened.wait(), 2)  # probes: one 401, then accepted
    token, _ = await creator.create_meter_event_session(credential=CREDENTIAL, stripe_account=None)
    assert token == "mes_token"
    assert [c.call.path for c in stripe.calls] == [
        "/v2/billing/meter_event_session",
        "/v1/balance",
        "/v1/balance",
        "/v2/billing/meter_event_session",
    ]


@pytest.mark.parametrize("status", [401, 403])
async def test_connected_account_refusing_the_session_fails_the_batch_without_fallback(
    status: int,
) -> None:
    """A connected account that revoked access refuses its session (401 or 403): the batch
    fails terminally (its events go to reply or DLQ), the v1 endpoint is not tried event by
    event, and the integration's gate stays open."""
    registry = CollectorRegistry()
    refused = failure(
        "authentication_error" if status == 401 else "permission_error",
        retryable=False,
        authentication=status == 401,
        http_status=status,
        code="account_invalid",
    )
    stripe = FakeStripe(failures=[refused])
    executor = session_executor(stripe, registry)
    v1 = V1()
    stream = StreamTransport(Sender(), MeterEventSessions(ExecutorSessionCreator(executor)), v1)
    connect = LedgerScope("default", "acct_1Gone")
    results = await stream.send(connect, CREDENTIAL, EVENTS)
    assert [r.status for r in results] == ["failed"] * 3
    assert {r.failure.detail.http_status for r in results if r.failure} == {status}
    assert {r.failure.retryable for r in results if r.failure} == {False}
    assert v1.batches == []
    assert executor.gate.rejected() == set()

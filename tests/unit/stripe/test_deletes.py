"""Deletes are recorded before they are sent: a 404 for a delete sent before is the delete
having worked; a 404 for one never sent is a failure (a mistyped id must not pass)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from consumer.contract.errors import StripeFailure
from consumer.contract.requests import DeleteCustomer
from consumer.observability.metrics import ServiceMetrics
from consumer.operations import stripe_call
from consumer.settings import StripeCredential
from consumer.shared_state.redis_client import SharedStateUnavailable
from consumer.stripe.credential_gate import CredentialGate
from consumer.stripe.deletes import DeleteRecords, RecordedDeletes
from consumer.stripe.executor import StripeCallExecutor
from consumer.stripe.object_locks import ObjectLocks
from consumer.stripe.rate_limit import RateLimiter
from consumer.stripe.retry import Attempts, RetryPolicy
from tests.unit.fakes import FakeStripe, failure, settings

CREDENTIAL: StripeCredential = settings().credentials["default"]
MISSING = failure(
    "invalid_request_error",
    retryable=False,
    code="resource_missing",
    message="No such customer: 'cus_1'",
    http_status=404,
)
TIMEOUT = failure("api_connection_error", retryable=True, message="timed out")
RATE_LIMITED = failure("rate_limit_error", retryable=True, http_status=429)


class SharedFake:
    def __init__(self) -> None:
        self.sent: set[str] = set()
        self.down = False

    async def mark_sent(self, key: str, ttl_seconds: float) -> bool:
        if self.down:
            raise SharedStateUnavailable("down")
        before = key in self.sent
        self.sent.add(key)
        return before

    async def forget(self, key: str) -> None:
        if self.down:
            raise SharedStateUnavailable("down")
        self.sent.discard(key)


class Replica:
    """One process: its executor sends through RecordedDeletes to a fake Stripe."""

    def __init__(self, stripe: FakeStripe, shared: SharedFake | None = None) -> None:
        self.stripe = stripe
        self.registry = CollectorRegistry()
        metrics = ServiceMetrics(self.registry)
        self.executor = StripeCallExecutor(
            RecordedDeletes(stripe, DeleteRecords(shared=shared), metrics),
            metrics,
            retry=RetryPolicy(budget_seconds=1, base_delay_seconds=0.001, max_delay_seconds=0.01),
            limiters={"default": RateLimiter(10_000)},
            locks=ObjectLocks(),
            gate=CredentialGate(),
        )

    async def delete(self, customer_id: str = "cus_1", key: str = "wf:del:h") -> dict[str, Any]:
        """The reply's output, or the error's code for a failure."""
        try:
            response = await self.executor.execute(
                stripe_call(DeleteCustomer(customer_id=customer_id)),
                operation="delete_customer",
                credential=CREDENTIAL,
                stripe_account=None,
                idempotency_key=key,
                attempts=Attempts(),
            )
        except StripeFailure as failed:
            return {"failed": failed.detail.code}
        result: dict[str, Any] = msgspec.json.decode(response.body)
        return result


DELETED = {"id": "cus_1", "object": "customer", "deleted": True}


async def test_a_404_for_a_delete_never_sent_is_a_failure_every_time() -> None:
    """A mistyped id: resource_missing, and a redelivery of it is still resource_missing."""
    replica = Replica(FakeStripe(failures=[MISSING, MISSING]))
    assert await replica.delete() == {"failed": "resource_missing"}
    assert await replica.delete() == {"failed": "resource_missing"}


async def test_a_redelivered_delete_whose_object_is_gone_is_deleted() -> None:
    """Sent and done, the reply lost: the redelivery's 404 is answered deleted."""
    stripe = FakeStripe(body=lambda _: DELETED)
    replica = Replica(stripe)
    assert await replica.delete() == DELETED
    stripe.failures.append(MISSING)
    assert await replica.delete() == DELETED
    assert len(stripe.calls) == 2
    samples = replica.registry.get_sample_value(
        "stripe_consumer_deduplicated_total", {"kind": "delete_record"}
    )
    assert samples == 1


async def test_a_retry_after_a_timeout_finds_the_object_gone_and_it_is_deleted() -> None:
    """A timeout may hide a done delete: the in-process retry's 404 is the delete having
    worked."""
    replica = Replica(FakeStripe(failures=[TIMEOUT, MISSING]))
    assert await replica.delete() == DELETED


async def test_a_refused_attempt_does_not_count_as_sent() -> None:
    """A 429 never executed: the retry's 404 is still a mistyped id's failure."""
    replica = Replica(FakeStripe(failures=[RATE_LIMITED, MISSING]))
    assert await replica.delete() == {"failed": "resource_missing"}


async def test_another_delete_of_the_same_object_is_not_taken_for_this_one() -> None:
    """Records are per request (idempotency key): another request's 404 is its own failure."""
    stripe = FakeStripe(body=lambda _: DELETED)
    replica = Replica(stripe)
    await replica.delete(key="wf-1:del:h")
    stripe.failures.append(MISSING)
    assert await replica.delete(key="wf-2:del:h") == {"failed": "resource_missing"}


@pytest.mark.parametrize("redis_down", [False, True])
async def test_the_record_is_shared_when_the_shared_memory_answers(redis_down: bool) -> None:
    """Another replica (or a restarted process) sees the record through the shared memory;
    with it down, deletes still go (and its 404 is then a failure elsewhere)."""
    shared = SharedFake()
    first = Replica(FakeStripe(failures=[TIMEOUT] * 100_000), shared)
    shared.down = redis_down
    assert await first.delete() == {"failed": None}  # the budget ran out on timeouts
    second = Replica(FakeStripe(failures=[MISSING]), shared)
    expected = {"failed": "resource_missing"} if redis_down else DELETED
    assert await second.delete() == expected

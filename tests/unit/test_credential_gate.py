"""A rejected credential holds its requests (no wall of failures) and probes until it works."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from consumer.engine.credential_gate import CredentialGate
from consumer.engine.executor import StripeCallExecutor
from consumer.engine.object_locks import ObjectLocks
from consumer.engine.rate_limit import RateLimiter
from consumer.engine.retry import Attempts, RetryPolicy
from consumer.errors import StripeFailure
from consumer.messages import ReplyError, Request
from consumer.metrics import ServiceMetrics
from consumer.operations import stripe_call
from tests.unit.fakes import FakeStripe, settings


def auth_failure() -> StripeFailure:
    detail = ReplyError(
        type="invalid_request_error", message="Invalid API Key provided", http_status=401
    )
    return StripeFailure(detail, category="authentication_error", authentication=True)


async def test_open_gate_admits_without_probe() -> None:
    """A healthy credential goes straight through."""
    assert await CredentialGate().admit("default") is False


async def test_rejected_credential_waits_and_one_probe_goes_through() -> None:
    """After a 401, callers wait; after the probe interval exactly one becomes the probe."""
    gate = CredentialGate(probe_interval_seconds=0.05)
    gate.record("default", authentication_failed=True, probe=False)
    assert gate.rejected() == {"default"}
    results = await asyncio.wait_for(asyncio.gather(gate.admit("default"), asyncio.sleep(0.01)), 1)
    assert results[0] is True
    waiter = asyncio.create_task(gate.admit("default"))
    await asyncio.sleep(0.1)
    assert not waiter.done()  # a probe is out: others keep waiting
    gate.record("default", authentication_failed=False, probe=True)
    assert await asyncio.wait_for(waiter, 1) is False
    assert gate.rejected() == set()


async def test_other_integrations_are_not_held() -> None:
    """Only the rejected credential waits."""
    gate = CredentialGate(probe_interval_seconds=10)
    gate.record("billing", authentication_failed=True, probe=False)
    assert await asyncio.wait_for(gate.admit("default"), 0.1) is False


async def test_executor_holds_the_request_until_the_key_works() -> None:
    """401 does not fail the request: it waits and succeeds once Stripe accepts the key;
    the metric shows the rejection meanwhile."""
    config = settings()
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)
    stripe = FakeStripe(failures=[auth_failure(), auth_failure()])
    executor = StripeCallExecutor(
        stripe,
        metrics,
        retry=RetryPolicy(budget_seconds=0),
        limiters={"default": RateLimiter(1000)},
        locks=ObjectLocks(),
        gate=CredentialGate(probe_interval_seconds=0.05),
    )
    request: Any = msgspec.convert({"operation": "get_balance"}, Request)
    task = asyncio.create_task(
        executor.execute(
            stripe_call(request),
            operation="get_balance",
            credential=config.credentials["default"],
            stripe_account=None,
            idempotency_key="k",
            attempts=Attempts(),
        )
    )
    await asyncio.sleep(0.02)
    assert (
        registry.get_sample_value("stripe_consumer_credential_rejected", {"integration": "default"})
        == 1
    )
    assert not task.done()
    response = await asyncio.wait_for(task, 2)
    assert response.http_status == 200
    assert len(stripe.calls) == 3
    assert (
        registry.get_sample_value("stripe_consumer_credential_rejected", {"integration": "default"})
        == 0
    )

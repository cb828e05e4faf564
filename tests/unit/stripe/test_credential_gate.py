"""A rejected platform key closes its integration's gate (its requests are held, not sent, not
failed) and is probed once per interval until it works; a 401/403 for a connected account
fails that request alone and never touches the gate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from consumer.contract.errors import StripeFailure
from consumer.contract.reply import ReplyError
from consumer.contract.requests import Request
from consumer.observability.metrics import ServiceMetrics
from consumer.operations import stripe_call
from consumer.settings import Secret, StripeCredential
from consumer.stripe.credential_gate import CredentialGate, CredentialHeld
from consumer.stripe.executor import StripeCallExecutor
from consumer.stripe.object_locks import ObjectLocks
from consumer.stripe.rate_limit import RateLimiter
from consumer.stripe.retry import Attempts, RetryPolicy
from tests.unit.fakes import FakeStripe, settings

REJECTED = ReplyError(type="authentication_error", message="Invalid API Key", http_status=401)


def key_rejected() -> StripeFailure:
    return StripeFailure(REJECTED, category="authentication_error", authentication=True)


def account_refused(status: int) -> StripeFailure:
    error_type = "authentication_error" if status == 401 else "permission_error"
    detail = ReplyError(
        type=error_type,
        code="account_invalid",
        message="The provided key does not have access to account 'acct_1Gone'",
        http_status=status,
    )
    return StripeFailure(detail, category=error_type, authentication=status == 401)


class Ticks:
    """A probe interval that passes only when the test says so: probes are counted exactly."""

    def __init__(self) -> None:
        self.waiting = 0
        self._tick = asyncio.Event()

    async def sleep(self, _seconds: float) -> None:
        self.waiting += 1
        try:
            await self._tick.wait()
            self._tick.clear()
        finally:
            self.waiting -= 1

    async def tick(self) -> None:
        """Let one interval pass, and the probe it starts run to its end."""
        self._tick.set()
        for _ in range(20):
            await asyncio.sleep(0)


class Probe:
    """Answers each probe with the next verdict (an exception is raised instead)."""

    def __init__(self, verdicts: list[bool | Exception | None]) -> None:
        self.verdicts = verdicts
        self.calls = 0

    async def __call__(self) -> bool | None:
        self.calls += 1
        verdict = self.verdicts.pop(0)
        if isinstance(verdict, Exception):
            raise verdict
        return verdict


async def test_open_gate_lets_every_integration_through() -> None:
    """Nothing rejected: check passes for any integration, readiness has nothing to say."""
    gate = CredentialGate()
    gate.check("default")
    gate.check("billing")
    assert gate.rejected() == set()


async def test_only_the_rejected_integration_is_held() -> None:
    """Rejecting billing holds billing (CredentialHeld naming it) and nobody else; accepting
    it lets it through again; listeners hear both changes."""
    gate = CredentialGate(probe_interval_seconds=3600)
    changes: list[tuple[str, bool]] = []
    gate.listen(lambda integration, rejected: changes.append((integration, rejected)))
    assert gate.reject("billing", REJECTED, Probe([])) is True
    with pytest.raises(CredentialHeld) as held:
        gate.check("billing")
    assert held.value.integration == "billing"
    gate.check("default")  # another integration is not slowed
    assert gate.rejected() == {"billing"}
    assert gate.rejection("billing") == REJECTED
    assert gate.rejection("default") is None
    gate.accept("billing")
    gate.check("billing")
    assert gate.rejected() == set()
    assert changes == [("billing", True), ("billing", False)]
    await gate.close()


async def test_one_probe_per_interval_however_many_requests_are_rejected() -> None:
    """Fifty 401s while the gate is closed start one prober; each interval probes once; a
    probe with no verdict or a bug does not stop it; the first accepted probe opens the gate
    and ends the probing."""
    ticks = Ticks()
    gate = CredentialGate(probe_interval_seconds=30, sleep=ticks.sleep)
    probe = Probe([False, None, RuntimeError("a bug in the probe"), False, True])
    first = gate.reject("default", REJECTED, probe)
    again = [gate.reject("default", REJECTED, probe) for _ in range(49)]
    assert (first, any(again)) == (True, False)
    await asyncio.sleep(0)
    assert (ticks.waiting, probe.calls) == (1, 0)  # nothing probed before an interval passed
    for expected_calls in (1, 2, 3, 4):
        await ticks.tick()
        assert probe.calls == expected_calls
        assert gate.rejected() == {"default"}
    await ticks.tick()
    assert probe.calls == 5
    assert gate.rejected() == set()
    assert ticks.waiting == 0  # the prober ended with the rejection


async def test_close_stops_probing() -> None:
    """Shutdown cancels the prober of a still-rejected key."""
    ticks = Ticks()
    gate = CredentialGate(sleep=ticks.sleep)
    gate.reject("default", REJECTED, Probe([]))
    await asyncio.sleep(0)
    assert ticks.waiting == 1
    await gate.close()
    assert ticks.waiting == 0


def executor_for(
    stripe: FakeStripe, registry: CollectorRegistry, gate: CredentialGate
) -> StripeCallExecutor:
    return StripeCallExecutor(
        stripe,
        ServiceMetrics(registry),
        retry=RetryPolicy(budget_seconds=0),
        limiters={"default": RateLimiter(1000), "billing": RateLimiter(1000)},
        locks=ObjectLocks(),
        gate=gate,
    )


CHARGE: Any = msgspec.convert(
    {"operation": "create_charge", "amount": 100, "currency": "usd", "source": "tok_visa"},
    Request,
)
DEFAULT = settings().credentials["default"]
BILLING = StripeCredential("billing", Secret("sk_test_51BillingKeyForUnitTests"))


async def run(
    executor: StripeCallExecutor, credential: StripeCredential, account: str | None = None
) -> Any:
    return await executor.execute(
        stripe_call(CHARGE),
        operation="create_charge",
        credential=credential,
        stripe_account=account,
        idempotency_key="k",
        attempts=Attempts(),
    )


def rejected_metric(registry: CollectorRegistry, integration: str) -> float | None:
    return registry.get_sample_value(
        "stripe_consumer_credential_rejected", {"integration": integration}
    )


async def test_platform_401_closes_the_gate_and_holds_without_calling_stripe_again() -> None:
    """A 401 naming no connected account: CredentialHeld (not a failure), the gauge goes to
    1 for that integration only; its next request is held without a call; others go on."""
    registry = CollectorRegistry()
    stripe = FakeStripe(failures=[key_rejected()])
    executor = executor_for(stripe, registry, CredentialGate(probe_interval_seconds=3600))
    assert (rejected_metric(registry, "default"), rejected_metric(registry, "billing")) == (0, 0)
    with pytest.raises(CredentialHeld):
        await run(executor, DEFAULT)
    assert executor.gate.rejected() == {"default"}
    assert (rejected_metric(registry, "default"), rejected_metric(registry, "billing")) == (1, 0)
    with pytest.raises(CredentialHeld):
        await run(executor, DEFAULT, account="acct_1Any")  # the platform key: Connect too
    assert len(stripe.calls) == 1
    assert (await run(executor, BILLING)).http_status == 200
    assert len(stripe.calls) == 2
    await executor.gate.close()


@pytest.mark.parametrize(
    ("status", "error_type"), [(401, "authentication_error"), (403, "permission_error")]
)
async def test_connected_account_401_or_403_fails_that_request_alone(
    status: int, error_type: str
) -> None:
    """A 401/403 naming a connected account: a terminal failure for this request, at once;
    the gate stays open, the gauge at 0, the next request (same integration) is sent."""
    registry = CollectorRegistry()
    stripe = FakeStripe(failures=[account_refused(status)])
    executor = executor_for(stripe, registry, CredentialGate(probe_interval_seconds=0.01))
    with pytest.raises(StripeFailure) as caught:
        await asyncio.wait_for(run(executor, DEFAULT, account="acct_1Gone"), 1)
    failure = caught.value
    assert (failure.detail.type, failure.status, failure.detail.http_status) == (
        error_type,
        "FAILED_WITH_TERMINAL_ERROR",
        status,
    )
    assert executor.gate.rejected() == set()
    assert rejected_metric(registry, "default") == 0
    assert (await run(executor, DEFAULT, account="acct_1Fine")).http_status == 200
    assert [c.stripe_account for c in stripe.calls] == ["acct_1Gone", "acct_1Fine"]


async def test_probe_is_one_read_with_the_platform_key_and_opens_the_gate() -> None:
    """The probe is GET /v1/balance with the rejected key, no account, no idempotency key;
    a 401 keeps the gate closed, an accepted probe opens it and the gauge returns to 0."""
    registry = CollectorRegistry()
    stripe = FakeStripe(failures=[key_rejected(), key_rejected()])
    executor = executor_for(stripe, registry, CredentialGate(probe_interval_seconds=0.01))
    with pytest.raises(CredentialHeld):
        await run(executor, BILLING)
    await eventually(lambda: executor.gate.rejected() == set())
    probes = stripe.calls[1:]
    assert [(c.call.http_method, c.call.path) for c in probes] == [("GET", "/v1/balance")] * 2
    assert {(c.api_key, c.stripe_account, c.idempotency_key) for c in probes} == {
        (BILLING.api_key.reveal(), None, None)
    }
    assert rejected_metric(registry, "billing") == 0
    assert (
        registry.get_sample_value(
            "stripe_consumer_credential_probes_total",
            {"integration": "billing", "result": "rejected"},
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "stripe_consumer_credential_probes_total",
            {"integration": "billing", "result": "accepted"},
        )
        == 1
    )
    assert (await run(executor, BILLING)).http_status == 200


@pytest.mark.parametrize(("status", "opens"), [(403, True), (500, False), (429, False)])
async def test_probe_verdict_of_other_answers(status: int, opens: bool) -> None:
    """A 403 to the probe was answered after authentication (the key works, without balance
    access); a 5xx or 429 says nothing, so the gate stays closed."""
    answer = StripeFailure(
        ReplyError(type="api_error", message="x", http_status=status, retryable=status != 403),
        category="api_error",
    )
    stripe = FakeStripe(failures=[key_rejected(), answer])
    executor = executor_for(
        stripe, CollectorRegistry(), CredentialGate(probe_interval_seconds=0.01)
    )
    with pytest.raises(CredentialHeld):
        await run(executor, DEFAULT)
    await eventually(lambda: len(stripe.calls) >= 2)
    await asyncio.sleep(0)
    if opens:
        assert executor.gate.rejected() == set()
    else:
        assert executor.gate.rejected() == {"default"}
    await executor.gate.close()


async def eventually(condition: Callable[[], bool], timeout_s: float = 2) -> None:
    """Poll a condition the code under test has no event for."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)

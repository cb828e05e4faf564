"""Running one Stripe call the way production needs it: behind the credential gate, holding
the locks of the objects it writes, within the credential's rate limit, retried with the same
idempotency key while failures are transient. Metrics for every attempt. It also probes a
rejected key for the gate (one read per probe interval).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final, Protocol

from consumer.contract.errors import StripeFailure
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics, stripe_outcome_label
from consumer.settings import Settings, StripeCredential
from consumer.stripe.calls import StripeCall, StripeResponse
from consumer.stripe.credential_gate import CredentialGate, CredentialHeld
from consumer.stripe.object_locks import ObjectLocks
from consumer.stripe.rate_limit import RateLimit
from consumer.stripe.retry import Attempts, RetryPolicy, with_retries
from consumer.stripe.shared_rate_limit import rate_limiters

_log = get_logger()
_PROBE_CALL: Final = StripeCall("GET", "/v1/balance", {})
_PROBE_OPERATION: Final = "credential_probe"  # the metrics' operation label for probes


class StripeCaller(Protocol):
    """What the executor needs of the Stripe gateway (a fake in unit tests)."""

    async def call(
        self,
        call: StripeCall,
        *,
        credential: StripeCredential,
        stripe_account: str | None,
        idempotency_key: str | None,
    ) -> StripeResponse: ...


class StripeCallExecutor:
    def __init__(
        self,
        caller: StripeCaller,
        metrics: ServiceMetrics,
        *,
        retry: RetryPolicy,
        limiters: Mapping[str, RateLimit],
        locks: ObjectLocks,
        gate: CredentialGate,
    ) -> None:
        self._caller = caller
        self._metrics = metrics
        self._retry = retry
        self._limiters = limiters
        self._locks = locks
        self._gate = gate
        gate.listen(self._credential_changed)
        for integration in limiters:
            metrics.credential_rejected.labels(integration).set(0)

    @property
    def gate(self) -> CredentialGate:
        return self._gate

    async def execute(
        self,
        call: StripeCall,
        *,
        operation: str,
        credential: StripeCredential,
        stripe_account: str | None,
        idempotency_key: str,
        attempts: Attempts,
    ) -> StripeResponse:
        """The response; or StripeFailure once retrying cannot help or the budget is spent.

        CredentialHeld (not sent, or refused) while Stripe rejects the integration's key: a
        401 for a request naming no connected account closes the gate, and the caller holds
        the request outside its worker slot. A 401 or 403 naming a connected account fails
        this request alone (terminal) and leaves the gate as it is.
        """
        integration = credential.integration
        self._gate.check(integration)
        lock_keys = [(integration, stripe_account, object_id) for object_id in call.locks]
        try:
            async with self._locks.holding(lock_keys):
                return await with_retries(
                    lambda: self._attempt(
                        call,
                        operation,
                        credential,
                        stripe_account=stripe_account,
                        idempotency_key=idempotency_key,
                        attempts=attempts,
                    ),
                    self._retry,
                    attempts,
                    on_retry=lambda _: self._metrics.stripe_retries.labels(operation).inc(),
                )
        except StripeFailure as failure:
            if not failure.authentication:
                raise
            if stripe_account is not None:
                raise failure.for_connected_account() from None
            self._key_rejected(credential, failure)
            raise CredentialHeld(integration) from None

    def _key_rejected(self, credential: StripeCredential, failure: StripeFailure) -> None:
        if self._gate.reject(
            credential.integration, failure.detail, lambda: self._probe(credential)
        ):
            _log.warning(
                "Stripe rejects this integration's key; holding its requests (at most the "
                "hold) and probing the key once every interval",
                extra={"integration": credential.integration, "error": failure.detail.message},
            )

    async def _probe(self, credential: StripeCredential) -> bool | None:
        """Does Stripe accept the key now? One read, no side effect: True, False (401 again),
        or None (no verdict: a 5xx, 429, timeout)."""
        integration = credential.integration
        limiter = self._limiters[integration]
        await limiter.acquire()
        started = time.perf_counter()
        try:
            await self._caller.call(
                _PROBE_CALL, credential=credential, stripe_account=None, idempotency_key=None
            )
        except StripeFailure as failure:
            self._observe(_PROBE_OPERATION, failure.category, started)
            verdict = _probe_verdict(failure)
        else:
            self._observe(_PROBE_OPERATION, None, started)
            verdict = True
        result = {True: "accepted", False: "rejected", None: "unknown"}[verdict]
        self._metrics.credential_probes.labels(integration, result).inc()
        return verdict

    def _credential_changed(self, integration: str, rejected: bool) -> None:
        self._metrics.credential_rejected.labels(integration).set(1 if rejected else 0)

    async def _attempt(
        self,
        call: StripeCall,
        operation: str,
        credential: StripeCredential,
        *,
        stripe_account: str | None,
        idempotency_key: str,
        attempts: Attempts,
    ) -> StripeResponse:
        self._gate.check(credential.integration)  # rejected meanwhile: not sent again
        limiter = self._limiters[credential.integration]
        waited = await limiter.acquire()
        self._metrics.rate_limit_wait.labels(credential.integration).observe(waited)
        started = time.perf_counter()
        try:
            response = await self._caller.call(
                call,
                credential=credential,
                stripe_account=stripe_account,
                idempotency_key=idempotency_key,
            )
        except StripeFailure as failure:
            attempts.stripe_seconds += self._observe(operation, failure.category, started)
            if failure.category == "rate_limit_error":
                limiter.slow_down()
            raise
        attempts.stripe_seconds += self._observe(operation, None, started)
        return response

    def _observe(self, operation: str, category: str | None, started: float) -> float:
        elapsed = time.perf_counter() - started
        self._metrics.stripe_requests.labels(operation, stripe_outcome_label(category)).inc()
        self._metrics.stripe_request_duration.labels(operation).observe(elapsed)
        return elapsed


def _probe_verdict(failure: StripeFailure) -> bool | None:
    """What a probe's failure says about the key: a 401 rejects it; any other 4xx but 429
    was answered after authentication (a restricted key without balance access gets 403), so
    the key works; 429, 5xx and connection failures say nothing."""
    if failure.authentication:
        return False
    status = failure.detail.http_status or 0
    if 400 <= status < 500 and status != 429:
        return True
    return None


def stripe_executor(
    settings: Settings,
    caller: StripeCaller,
    metrics: ServiceMetrics,
    limiters: dict[str, RateLimit] | None = None,
) -> StripeCallExecutor:
    """Rate limiters per credential: the given ones, or this process's share of each."""
    return StripeCallExecutor(
        caller,
        metrics,
        retry=RetryPolicy(budget_seconds=settings.retry_budget_seconds),
        limiters=limiters if limiters is not None else rate_limiters(settings, None, ""),
        locks=ObjectLocks(),
        gate=CredentialGate(settings.credential_probe_seconds),
    )

"""Running one Stripe call the way production needs it: behind the credential gate, holding
the locks of the objects it writes, within the credential's rate limit, retried with the same
idempotency key while failures are transient. Metrics for every attempt.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from consumer.engine.credential_gate import CredentialGate
from consumer.engine.object_locks import ObjectLocks
from consumer.engine.rate_limit import RateLimit
from consumer.engine.retry import Attempts, RetryPolicy, with_retries
from consumer.errors import StripeFailure
from consumer.logs import get_logger
from consumer.metrics import ServiceMetrics, stripe_outcome_label
from consumer.operations import StripeCall
from consumer.operations.base import StripeResponse
from consumer.settings import StripeCredential

_log = get_logger()


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

        A rejected credential (401) does not fail the request: it waits at the gate, and runs
        again once the credential works.
        """
        integration = credential.integration
        lock_keys = [(integration, stripe_account, object_id) for object_id in call.locks]
        while True:
            probe = await self._gate.admit(integration)
            try:
                async with self._locks.holding(lock_keys):
                    response = await with_retries(
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
                if failure.authentication and integration not in self._gate.rejected():
                    _log.warning(
                        "Stripe rejects this integration's key; holding its requests until it "
                        "works (one probe every interval)",
                        extra={"integration": integration, "error": failure.detail.message},
                    )
                self._gate.record(
                    integration, authentication_failed=failure.authentication, probe=probe
                )
                self._metrics.credential_rejected.labels(integration).set(
                    1 if failure.authentication else 0
                )
                if failure.authentication:
                    continue
                raise
            self._gate.record(integration, authentication_failed=False, probe=probe)
            self._metrics.credential_rejected.labels(integration).set(0)
            return response

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

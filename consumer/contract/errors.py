"""The service's error tree. Each error knows whether retrying can help.

::

    ServiceError                 base: carries the ReplyError the reply will hold
    ├── RequestRejected          input the service refused itself (type `validation_error`);
    │                            never retryable, never reaches Stripe
    └── StripeFailure            Stripe refused the call or could not be reached; built in one
                                 place, ``consumer.stripe.gateway.map_stripe_errors``
        ├── retryable            rate limit, 5xx, timeout, connection, lock/key contention,
        │                        or Stripe said `Stripe-Should-Retry: true`
        └── terminal             card declined, invalid request, authentication, permission,
                                 idempotency conflict, or `Stripe-Should-Retry: false`

A retryable failure that outlives the service's own retries becomes a `FAILED` reply
(Conductor's retry policy may try again); a terminal one becomes `FAILED_WITH_TERMINAL_ERROR`.

Two exceptions are no failure of a request and live beside what raises them:
``stripe.credential_gate.CredentialHeld`` (Stripe rejects an integration's key: the request
waits) and ``shared_state.redis_client.SharedStateUnavailable`` (Redis did not answer).
"""

from __future__ import annotations

import msgspec

from consumer.contract.reply import ReplyError, ReplyStatus

VALIDATION_ERROR = "validation_error"


class ServiceError(Exception):
    """A request that cannot complete, with the error its reply carries."""

    def __init__(self, detail: ReplyError) -> None:
        super().__init__(detail.message)
        self.detail = detail

    @property
    def retryable(self) -> bool:
        return self.detail.retryable

    @property
    def status(self) -> ReplyStatus:
        return "FAILED" if self.retryable else "FAILED_WITH_TERMINAL_ERROR"

    @property
    def reason(self) -> str:
        """One readable line for Conductor's `reasonForIncompletion`."""
        return self.detail.reason


class RequestRejected(ServiceError):
    """The request breaks the contract; ``param`` names the field (a JSON path)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(ReplyError(type=VALIDATION_ERROR, message=message, param=param))


class StripeFailure(ServiceError):
    """Stripe answered with an error, or could not be reached.

    ``authentication`` marks a rejected credential (HTTP 401): the engine stops intake for
    that credential rather than failing every queued request with the same error.
    ``retry_after`` is Stripe's hint, in seconds, when it gave one. ``category`` is a bounded
    label for metrics (the SDK's error class: ``rate_limit_error``, ``card_error``, …), since
    Stripe's own ``type`` is ``invalid_request_error`` for rate limits too.
    """

    def __init__(
        self,
        detail: ReplyError,
        *,
        category: str,
        authentication: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.category = category
        self.authentication = authentication
        self.retry_after = retry_after

    def for_connected_account(self) -> StripeFailure:
        """A 401/403 for a request naming ``stripe_account``: it concerns that account only,
        so it is terminal for this request and says nothing about the integration's key."""
        return StripeFailure(
            msgspec.structs.replace(self.detail, retryable=False),
            category=self.category,
            retry_after=self.retry_after,
        )

    def as_retryable(self) -> StripeFailure:
        """The same failure, to be retried (a refused session token: a new one may work)."""
        return StripeFailure(
            msgspec.structs.replace(self.detail, retryable=True),
            category=self.category,
            retry_after=self.retry_after,
        )

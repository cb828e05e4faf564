"""How a batch of meter events reaches Stripe.

- :class:`StreamTransport`: Stripe's v2 meter event stream, up to 100 events per request,
  authorised by a session token. Validation is asynchronous at Stripe (problems arrive later
  as `v1.billing.meter.error_report_triggered` events), so a batch is accepted or refused
  whole.
- :class:`SingleEventTransport`: the v1 endpoint, one call per event (concurrently), through
  the executor (rate limit, retries, credential gate); per-event answers, including Stripe's
  "an event already exists with this identifier", which counts as delivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from consumer.contract.errors import StripeFailure
from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.scopes import Expiring
from consumer.metering.sessions import MeterEventSessions
from consumer.observability.logs import get_logger
from consumer.operations.meter_events import create_meter_event, meter_event_params
from consumer.settings import StripeCredential
from consumer.stripe.calls import StripeCall
from consumer.stripe.credential_gate import CredentialHeld
from consumer.stripe.executor import StripeCallExecutor
from consumer.stripe.retry import Attempts

_log = get_logger()


class StreamSender(Protocol):
    async def send_meter_event_stream(
        self, *, token: str, events: list[dict[str, object]]
    ) -> None: ...


class MeterTransport(Protocol):
    name: str

    async def send(
        self, scope: LedgerScope, credential: StripeCredential, events: Sequence[MeterEvent]
    ) -> list[MeterResult]:
        """One result per event; raise StripeFailure when the whole batch failed."""
        ...


class StreamTransport:
    """Batches on the v2 stream; a batch the stream refuses for good goes through ``fallback``
    (the v1 endpoint: per-event answers), and so does that account's traffic for a while.

    - session expired, or its token refused (401): drop the session; the batch is retried
      (a new session is created through the executor, where a rejected API key waits at the
      credential gate instead of failing the events);
    - transient failure (429, 5xx, connection): raised as is; the batcher retries the batch;
    - anything else (the stream not enabled for the account, a permission missing, a batch
      refused whole): this batch and the account's next ones for ``fallback_seconds`` go
      through ``fallback``, which answers each event on its own merits: usage is never
      dead-lettered because the stream refused a batch. (At most ``max_fallbacks`` accounts
      are remembered so; expired ones are dropped.)
    - an unexpected exception (a bug in the stream's path, not Stripe's answer): raised for
      the batcher to retry with its backoff; the account's
      :data:`STREAM_UNEXPECTED_BEFORE_FALLBACK`-th in a row takes the path of a refusal for
      good (the v1 endpoint, whose code is not the stream's), so a stream-only bug does not
      fail usage.
    """

    name = "v2_stream"

    def __init__(
        self,
        sender: StreamSender,
        sessions: MeterEventSessions,
        fallback: MeterTransport,
        *,
        fallback_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_fallbacks: int = 10_000,
    ) -> None:
        self._sender = sender
        self._sessions = sessions
        self._fallback = fallback
        self._fallback_seconds = fallback_seconds
        self._clock = clock
        self._falling_back: Expiring[LedgerScope, bool] = Expiring(max_fallbacks, clock)
        self._unexpected: Expiring[LedgerScope, int] = Expiring(max_fallbacks, clock)

    @property
    def accounts_falling_back(self) -> int:
        return len(self._falling_back)

    async def send(
        self, scope: LedgerScope, credential: StripeCredential, events: Sequence[MeterEvent]
    ) -> list[MeterResult]:
        if self._falling_back.get(scope):
            return await self._fallback.send(scope, credential, events)
        token = ""
        try:
            token = await self._sessions.token(scope, credential)
            await self._sender.send_meter_event_stream(
                token=token, events=[event.stream_body() for event in events]
            )
        except CredentialHeld:
            raise
        except StripeFailure as failure:
            if token and (
                failure.category == "temporary_session_expired" or failure.authentication
            ):
                self._sessions.expired(scope, token)
                raise failure.as_retryable() from None
            if failure.retryable:
                raise
            if not token and _account_unreachable(scope, failure):
                # The connected account revoked access (or never existed): the v1 endpoint
                # would refuse each event the same way. The batch fails, events to reply/DLQ.
                return [MeterResult("failed", failure=failure, api=self.name)] * len(events)
            return await self._fall_back(
                scope, credential, events, failure.detail.type, failure.detail.message
            )
        except Exception as exc:  # a bug, not Stripe's answer: the batcher retries it
            failures = (self._unexpected.get(scope) or 0) + 1
            if failures < STREAM_UNEXPECTED_BEFORE_FALLBACK:
                self._unexpected.put(scope, failures, self._clock() + self._fallback_seconds)
                raise
            self._unexpected.pop(scope)
            return await self._fall_back(scope, credential, events, "internal_error", repr(exc))
        self._unexpected.pop(scope)
        return [_STREAM_DELIVERED] * len(events)

    async def _fall_back(
        self,
        scope: LedgerScope,
        credential: StripeCredential,
        events: Sequence[MeterEvent],
        error_type: str,
        error: str,
    ) -> list[MeterResult]:
        """This batch and the account's next ones for a while through the v1 endpoint."""
        _log.warning(
            "the meter event stream refused a batch; sending through the v1 endpoint",
            extra={
                "integration": scope.integration,
                "error_type": error_type,
                "error": error,
                "fallback_seconds": self._fallback_seconds,
            },
        )
        self._falling_back.put(scope, True, self._clock() + self._fallback_seconds)
        return await self._fallback.send(scope, credential, events)


_STREAM_DELIVERED: Final = MeterResult("delivered", attempts=1, api=StreamTransport.name)
# An account's unexpected exceptions in a row on the stream before its batch takes the v1
# path (the batcher's backoff runs between them; it gives up after UNEXPECTED_ATTEMPTS).
STREAM_UNEXPECTED_BEFORE_FALLBACK: Final = 3


_HELD: Final = MeterResult("held", api="v1")


def _account_unreachable(scope: LedgerScope, failure: StripeFailure) -> bool:
    """A session refused with 401/403 for a connected account: that account, not the stream."""
    return scope.stripe_account is not None and failure.detail.http_status in (401, 403)


def _identifier_exists(failure: StripeFailure) -> bool:
    """Stripe's answer to a repeated identifier (v1): delivered before, not an error."""
    message = failure.detail.message.lower()
    return (
        failure.detail.type == "invalid_request_error"
        and "already exists" in message
        and "identifier" in message
    )


class SingleEventTransport:
    name = "v1"

    def __init__(self, executor: StripeCallExecutor) -> None:
        self._executor = executor

    async def send(
        self, scope: LedgerScope, credential: StripeCredential, events: Sequence[MeterEvent]
    ) -> list[MeterResult]:
        return list(await asyncio.gather(*(self._one(scope, credential, e) for e in events)))

    async def _one(
        self, scope: LedgerScope, credential: StripeCredential, event: MeterEvent
    ) -> MeterResult:
        params = meter_event_params(
            event.event_name, event.payload, event.identifier, event.timestamp
        )
        attempts = Attempts()
        try:
            response = await self._executor.execute(
                StripeCall(create_meter_event.http_method, create_meter_event.path, params),
                operation=create_meter_event.name,
                credential=credential,
                stripe_account=scope.stripe_account,
                # The contract: Idempotency-Key is the identifier, so that Stripe's error
                # reports (which name a request by its idempotency key) name the event.
                idempotency_key=event.identifier,
                attempts=attempts,
            )
        except CredentialHeld:
            return _HELD
        except StripeFailure as failure:
            if _identifier_exists(failure):
                return MeterResult(
                    "deduplicated",
                    request_id=failure.detail.request_id,
                    attempts=attempts.count,
                    api=self.name,
                )
            return MeterResult("failed", failure=failure, attempts=attempts.count, api=self.name)
        return MeterResult(
            "delivered", request_id=response.request_id, attempts=attempts.count, api=self.name
        )

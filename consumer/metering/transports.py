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
from collections.abc import Sequence
from typing import Protocol

from consumer.engine.executor import StripeCallExecutor
from consumer.engine.retry import Attempts
from consumer.errors import StripeFailure
from consumer.identifier_ledger import LedgerScope
from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.sessions import MeterEventSessions
from consumer.operations.base import StripeCall
from consumer.settings import StripeCredential


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
    name = "v2_stream"

    def __init__(self, sender: StreamSender, sessions: MeterEventSessions) -> None:
        self._sender = sender
        self._sessions = sessions

    async def send(
        self, scope: LedgerScope, credential: StripeCredential, events: Sequence[MeterEvent]
    ) -> list[MeterResult]:
        token = await self._sessions.token(scope, credential)
        try:
            await self._sender.send_meter_event_stream(
                token=token, events=[event.stream_body() for event in events]
            )
        except StripeFailure as failure:
            if failure.category == "temporary_session_expired":
                self._sessions.expired(scope, token)
            raise
        return [MeterResult("delivered", attempts=1)] * len(events)


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
        params: dict[str, object] = {
            "event_name": event.event_name,
            "payload": event.payload,
            "identifier": event.identifier,
        }
        if event.timestamp is not None:
            params["timestamp"] = event.timestamp
        attempts = Attempts()
        try:
            response = await self._executor.execute(
                StripeCall("POST", "/v1/billing/meter_events", params),
                operation="create_meter_event",
                credential=credential,
                stripe_account=scope.stripe_account,
                idempotency_key=event.idempotency_key,
                attempts=attempts,
            )
        except StripeFailure as failure:
            if _identifier_exists(failure):
                return MeterResult(
                    "deduplicated", request_id=failure.detail.request_id, attempts=attempts.count
                )
            return MeterResult("failed", failure=failure, attempts=attempts.count)
        return MeterResult("delivered", request_id=response.request_id, attempts=attempts.count)

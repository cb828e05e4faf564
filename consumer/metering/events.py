"""A meter event ready for Stripe, and what became of it."""

from __future__ import annotations

import time
from typing import Any, Literal

import msgspec

from consumer.contract.errors import StripeFailure
from consumer.contract.requests import CreateMeterEvent
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.operations.meter_events import meter_event_payload
from consumer.settings import StripeCredential


class MeterEvent(msgspec.Struct, frozen=True):
    """One usage event; ``identifier`` is always set (given, or derived from the record)."""

    scope: LedgerScope
    credential: StripeCredential
    event_name: str
    identifier: str
    payload: dict[str, str]
    timestamp: int | None
    idempotency_key: str  # the contract's derived key (the reply shows it); v1 sends `identifier`

    @classmethod
    def from_request(
        cls,
        request: CreateMeterEvent,
        *,
        identifier: str,
        idempotency_key: str,
        credential: StripeCredential,
    ) -> MeterEvent:
        account = request.stripe_account if isinstance(request.stripe_account, str) else None
        return cls(
            scope=LedgerScope(credential.integration, account),
            credential=credential,
            event_name=request.event_name,
            identifier=identifier,
            idempotency_key=idempotency_key,
            payload=meter_event_payload(request),
            timestamp=request.timestamp if isinstance(request.timestamp, int) else None,
        )

    def stream_body(self) -> dict[str, Any]:
        """The event as the v2 stream takes it (timestamp as RFC 3339)."""
        body: dict[str, Any] = {
            "event_name": self.event_name,
            "identifier": self.identifier,
            "payload": self.payload,
        }
        if self.timestamp is not None:
            body["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.timestamp))
        return body

    def as_object(self) -> dict[str, Any]:
        """The reply's `output`: the meter event as Stripe records it."""
        event: dict[str, Any] = {
            "object": "billing.meter_event",
            "event_name": self.event_name,
            "identifier": self.identifier,
            "payload": self.payload,
        }
        if self.timestamp is not None:
            event["timestamp"] = self.timestamp
        return event


MeterStatus = Literal["delivered", "deduplicated", "failed", "held"]


class MeterResult(msgspec.Struct, frozen=True):
    """``delivered``: Stripe accepted it now. ``deduplicated``: it was counted before (the
    ledger, or Stripe said the identifier exists). ``failed``: retrying cannot help.
    ``held``: not sent, Stripe rejects the integration's key (the pipeline holds the event
    until the key works or the hold runs out)."""

    status: MeterStatus
    failure: StripeFailure | None = None
    request_id: str | None = None
    attempts: int = 0
    api: str = ""  # which endpoint answered: `v2_stream` or `v1` (the metric's label)

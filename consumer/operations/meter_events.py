"""Meter events: usage recorded for a customer on a meter, and its cancellation.

The payload keys are Stripe's defaults for a meter (`stripe_customer_id`, `value`); values are
strings, as Stripe requires. The identifier is always sent: the processor fills in the derived
one before this mapping runs, so a redelivered event is recognised by Stripe as well.
"""

from __future__ import annotations

from typing import Any

from consumer.contract.requests import CancelMeterEvent, CreateMeterEvent
from consumer.operations.base import Operation, given


def meter_event_payload(r: CreateMeterEvent) -> dict[str, str]:
    return {"stripe_customer_id": r.customer_id, "value": r.decimal_value()}


def meter_event_params(
    event_name: str, payload: dict[str, str], identifier: object, timestamp: object
) -> dict[str, Any]:
    """The v1 endpoint's parameters: this operation's, and the meter lane's single events'."""
    return given(event_name=event_name, payload=payload, identifier=identifier, timestamp=timestamp)


def _create_params(r: CreateMeterEvent) -> dict[str, Any]:
    return meter_event_params(r.event_name, meter_event_payload(r), r.identifier, r.timestamp)


create_meter_event = Operation(CreateMeterEvent, "POST", "/v1/billing/meter_events", _create_params)


def _cancel_params(r: CancelMeterEvent) -> dict[str, Any]:
    return {"event_name": r.event_name, "type": "cancel", "cancel": {"identifier": r.identifier}}


def _cancelled_event(r: CancelMeterEvent) -> tuple[str, ...]:
    """The lock: the event cancelled, so two cancels of one event never meet at Stripe."""
    return (f"meter_event:{r.event_name}:{r.identifier}",)


cancel_meter_event = Operation(
    CancelMeterEvent,
    "POST",
    "/v1/billing/meter_event_adjustments",
    _cancel_params,
    writes_to=_cancelled_event,
)

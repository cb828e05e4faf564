"""Meter events: usage recorded for a customer on a meter.

The payload keys are Stripe's defaults for a meter (`stripe_customer_id`, `value`); values are
strings, as Stripe requires. The identifier is always sent: the processor fills in the derived
one before this mapping runs, so a redelivered event is recognised by Stripe as well.
"""

from __future__ import annotations

from typing import Any

from consumer.contract.requests import CreateMeterEvent
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

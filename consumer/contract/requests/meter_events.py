"""Meter events: usage for a customer on a meter, counted once per identifier.

The value is checked to be what Stripe counts (at most 15 significant digits and 12
decimals) and sent as a plain decimal string; the timestamp must lie in Stripe's window.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Annotated, ClassVar, Final

from msgspec import UNSET, Meta, UnsetType

from consumer.contract.requests.base import OperationRequest
from consumer.contract.requests.fields import (
    CustomerId,
    FieldError,
    MeterEventIdentifier,
    MeterEventName,
    UnixSeconds,
)

MAX_METER_EVENT_AGE_SECONDS: Final = 35 * 24 * 3600
MAX_METER_EVENT_LEAD_SECONDS: Final = 5 * 60

MeterValue = Annotated[
    int | float | Annotated[str, Meta(min_length=1, max_length=64)],
    Meta(
        description="An integer, a decimal, or a numeric string, of at most 15 significant "
        "digits (Stripe's limit) and 12 decimals; sent to Stripe as a string"
    ),
]


class CancelMeterEvent(OperationRequest, tag="cancel_meter_event", kw_only=True, frozen=True):
    """Stripe's meter event adjustment of type `cancel`: the event stops counting. Stripe
    takes it within 24 hours of receiving the event; the ledger then says `cancelled`."""

    summary: ClassVar[str] = "Cancel a meter event by its identifier (within 24 hours of it)"
    event_name: MeterEventName
    identifier: MeterEventIdentifier


class CreateMeterEvent(OperationRequest, tag="create_meter_event", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Record usage for a customer on a meter, counted once per identifier"
    event_name: MeterEventName
    customer_id: CustomerId
    identifier: MeterEventIdentifier | UnsetType | None = UNSET
    value: MeterValue | None = 1
    timestamp: UnixSeconds | UnsetType | None = UNSET

    def check(self, now: float) -> None:
        self.decimal_value()  # raises FieldError when not a finite number
        if isinstance(self.timestamp, int):
            if self.timestamp < now - MAX_METER_EVENT_AGE_SECONDS:
                raise FieldError("$.timestamp", "Expected a time no more than 35 days in the past")
            if self.timestamp > now + MAX_METER_EVENT_LEAD_SECONDS:
                raise FieldError(
                    "$.timestamp", "Expected a time no more than 5 minutes in the future"
                )

    def decimal_value(self) -> str:
        """The value as Stripe wants it: a plain decimal string."""
        value = 1 if self.value is None else self.value
        if type(value) is int:  # the common case: no Decimal round trip
            if not -_METER_VALUE_LIMIT < value < _METER_VALUE_LIMIT:
                raise FieldError("$.value", _METER_VALUE_RANGE)
            return str(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise FieldError("$.value", "Expected a finite number")
        try:
            number = Decimal(value.strip() if isinstance(value, str) else repr(value))
        except InvalidOperation:
            raise FieldError("$.value", f"Expected a number, got {value!r}") from None
        if not number.is_finite():
            raise FieldError("$.value", "Expected a finite number")
        # Bound the digits before any arithmetic: "1e999999999" is a short string, and
        # writing it out (or normalising it) would take minutes or overflow.
        if number and not -_METER_VALUE_DECIMALS <= number.adjusted() < _METER_VALUE_DIGITS:
            raise FieldError("$.value", _METER_VALUE_RANGE)
        _, digits, exponent = number.normalize().as_tuple()
        if isinstance(exponent, int) and (
            exponent < -_METER_VALUE_DECIMALS or len(digits) > _METER_VALUE_DIGITS
        ):
            raise FieldError("$.value", _METER_VALUE_RANGE)
        if number == number.to_integral_value():
            return str(int(number))
        return format(number.normalize(), "f")


# A meter event's value, as the plain decimal string Stripe receives: at most 15 significant
# digits (Stripe's limit: more is refused, on the v2 stream only later, in an error report,
# and the usage is lost), so below 10^15 in magnitude (an integer's trailing zeros are digits
# in what is sent), and at most 12 decimal places. The bounds also keep a short input from
# expanding into millions of digits.
_METER_VALUE_DIGITS: Final = 15
_METER_VALUE_DECIMALS: Final = 12
_METER_VALUE_LIMIT: Final = 10**_METER_VALUE_DIGITS
_METER_VALUE_RANGE: Final = (
    "Expected a number with at most 15 significant digits (Stripe's limit) and at most "
    "12 decimals, below 10^15 in magnitude"
)

"""The operation table: every request type mapped to the Stripe call it makes, pure (no I/O).
Imports contract and stripe's calls.

An explicit table (not decorators), so it is greppable and independent of import order;
:func:`check_complete` runs at start-up and in the tests, so a request type without an
operation can never ship.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from consumer.contract.requests import REQUEST_TYPES, OperationRequest
from consumer.operations import (
    balance,
    charges,
    coupons,
    customers,
    meter_events,
    payment_intents,
    payment_methods,
    refunds,
)
from consumer.operations.base import Operation
from consumer.stripe.calls import StripeCall

OPERATIONS: Final[tuple[Operation[Any], ...]] = (
    balance.get_balance,
    customers.list_customers,
    customers.create_customer,
    customers.get_customer,
    customers.update_customer,
    customers.delete_customer,
    coupons.create_coupon,
    coupons.list_coupons,
    payment_intents.create_payment_intent,
    payment_intents.get_payment_intent,
    payment_intents.cancel_payment_intent,
    charges.list_charges,
    charges.create_charge,
    charges.update_charge,
    charges.get_charge,
    refunds.create_refund,
    refunds.get_refund,
    payment_methods.attach_payment_method,
    payment_methods.get_payment_method,
    payment_methods.detach_payment_method,
    meter_events.create_meter_event,
    meter_events.cancel_meter_event,
)

OPERATION_BY_TYPE: Final[Mapping[type[OperationRequest], Operation[Any]]] = {
    operation.request_type: operation for operation in OPERATIONS
}


def check_complete() -> None:
    """Fail loudly when a request type has no operation, or one has two."""
    missing = [t.__name__ for t in REQUEST_TYPES if t not in OPERATION_BY_TYPE]
    if missing or len(OPERATION_BY_TYPE) != len(OPERATIONS):
        raise RuntimeError(f"operation table incomplete or duplicated; missing: {missing}")


def stripe_call(request: OperationRequest) -> StripeCall:
    return OPERATION_BY_TYPE[type(request)].stripe_call(request)


def written_objects(request: OperationRequest) -> tuple[str, ...]:
    """The ids of the existing Stripe objects the request writes (its call's locks)."""
    return OPERATION_BY_TYPE[type(request)].written(request)


__all__ = [
    "OPERATIONS",
    "OPERATION_BY_TYPE",
    "Operation",
    "check_complete",
    "stripe_call",
    "written_objects",
]

"""Each operation maps its request to exactly the Stripe call and parameters it should."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from consumer.examples import EXAMPLE_PARAMETERS
from consumer.messages import OPERATION_NAMES, REQUEST_TYPES, Request
from consumer.operations import OPERATIONS, check_complete, stripe_call

EXPECTED: dict[str, tuple[str, str, str | None, dict[str, Any]]] = {
    "get_balance": ("GET", "balance.retrieve", None, {}),
    "list_customers": (
        "GET",
        "customers.list",
        None,
        {"limit": 3, "email": "jenny.rosen@example.com"},
    ),
    "create_customer": (
        "POST",
        "customers.create",
        None,
        {
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "phone": "+15555550100",
            "description": "Customer created by a workflow",
            "metadata": {"order_id": "6735"},
        },
    ),
    "get_customer": ("GET", "customers.retrieve", "cus_NffrFeUfNV2Hib", {}),
    "update_customer": (
        "POST",
        "customers.update",
        "cus_NffrFeUfNV2Hib",
        {"description": "Updated by a workflow", "metadata": {"tier": "gold"}},
    ),
    "delete_customer": ("DELETE", "customers.delete", "cus_NffrFeUfNV2Hib", {}),
    "create_coupon": (
        "POST",
        "coupons.create",
        None,
        {
            "id": "SUMMER25",
            "percent_off": 25,
            "duration": "repeating",
            "duration_in_months": 3,
            "name": "Summer 25%",
        },
    ),
    "list_coupons": ("GET", "coupons.list", None, {"limit": 5}),
    "create_payment_intent": (
        "POST",
        "payment_intents.create",
        None,
        {
            "amount": 2000,
            "currency": "usd",
            "customer": "cus_NffrFeUfNV2Hib",
            "description": "Order 6735",
            "metadata": {"order_id": "6735"},
        },
    ),
    "get_payment_intent": ("GET", "payment_intents.retrieve", "pi_3MtwBwLkdIwHu7ix28a3tqPa", {}),
    "cancel_payment_intent": (
        "POST",
        "payment_intents.cancel",
        "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        {"cancellation_reason": "requested_by_customer"},
    ),
    "list_charges": ("GET", "charges.list", None, {"limit": 3, "customer": "cus_NffrFeUfNV2Hib"}),
    "create_charge": (
        "POST",
        "charges.create",
        None,
        {
            "amount": 4200,
            "currency": "usd",
            "source": "tok_visa",
            "description": "Order 6736",
            "metadata": {"order_id": "6736"},
        },
    ),
    "update_charge": (
        "POST",
        "charges.update",
        "ch_3MmlLrLkdIwHu7ix0snN0B15",
        {"description": "Order 6736 (shipped)", "metadata": {"shipped": "true"}},
    ),
    "get_charge": ("GET", "charges.retrieve", "ch_3MmlLrLkdIwHu7ix0snN0B15", {}),
    "create_refund": (
        "POST",
        "refunds.create",
        None,
        {
            "charge": "ch_3MmlLrLkdIwHu7ix0snN0B15",
            "amount": 1000,
            "reason": "requested_by_customer",
        },
    ),
    "get_refund": ("GET", "refunds.retrieve", "re_1Nispe2eZvKYlo2Cd31jOCgZ", {}),
    "attach_payment_method": (
        "POST",
        "payment_methods.attach",
        "pm_card_visa",
        {"customer": "cus_NffrFeUfNV2Hib"},
    ),
    "get_payment_method": ("GET", "payment_methods.retrieve", "pm_1Q0PsIJvEtkwdCNYMSaVuRz6", {}),
    "detach_payment_method": ("POST", "payment_methods.detach", "pm_1Q0PsIJvEtkwdCNYMSaVuRz6", {}),
    "create_meter_event": (
        "POST",
        "billing.meter_events.create",
        None,
        {
            "event_name": "api_requests",
            "payload": {"stripe_customer_id": "cus_NffrFeUfNV2Hib", "value": "3"},
        },
    ),
}


def test_table_is_complete() -> None:
    """Every request type has exactly one operation, in the union's order."""
    check_complete()
    assert [op.request_type for op in OPERATIONS] == list(REQUEST_TYPES)
    assert set(EXPECTED) == set(OPERATION_NAMES) == set(EXAMPLE_PARAMETERS)


@pytest.mark.parametrize("operation", OPERATION_NAMES)
def test_operation_maps_to_stripe_call(operation: str) -> None:
    """The example request becomes the expected method, SDK call, id and parameters."""
    request = msgspec.convert({"operation": operation, **EXAMPLE_PARAMETERS[operation]}, Request)
    call = stripe_call(request)
    method, sdk_method, resource_id, params = EXPECTED[operation]
    assert (call.http_method, call.sdk_method, call.resource_id, call.params) == (
        method,
        sdk_method,
        resource_id,
        params,
    )
    assert call.writes == (method == "POST")


def test_coupon_with_amount_off_lowercases_currency() -> None:
    """Currency is normalised to lower case before it reaches Stripe."""
    request = msgspec.convert(
        {"operation": "create_coupon", "id": "TEN", "amount_off": 1000, "currency": "EUR"}, Request
    )
    assert stripe_call(request).params == {"id": "TEN", "amount_off": 1000, "currency": "eur"}


def test_meter_event_sends_identifier_and_timestamp_when_given() -> None:
    """Identifier and timestamp go to Stripe as given."""
    request = msgspec.convert(
        {
            "operation": "create_meter_event",
            "event_name": "e",
            "customer_id": "cus_1",
            "identifier": "i-1",
            "timestamp": 1_780_000_000,
            "value": "2.50",
        },
        Request,
    )
    assert stripe_call(request).params == {
        "event_name": "e",
        "payload": {"stripe_customer_id": "cus_1", "value": "2.5"},
        "identifier": "i-1",
        "timestamp": 1_780_000_000,
    }

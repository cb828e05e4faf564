"""Each operation maps its request to exactly the Stripe call and parameters it should."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from consumer.contract.examples import EXAMPLE_PARAMETERS
from consumer.contract.requests import OPERATION_NAMES, REQUEST_TYPES, Request
from consumer.operations import OPERATIONS, check_complete, stripe_call

EXPECTED: dict[str, tuple[str, str, dict[str, Any]]] = {
    "get_balance": ("GET", "/v1/balance", {}),
    "list_customers": (
        "GET",
        "/v1/customers",
        {"limit": 3, "email": "jenny.rosen@example.com"},
    ),
    "create_customer": (
        "POST",
        "/v1/customers",
        {
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "phone": "+15555550100",
            "description": "Customer created by a workflow",
            "metadata": {"order_id": "6735"},
        },
    ),
    "get_customer": ("GET", "/v1/customers/cus_NffrFeUfNV2Hib", {}),
    "update_customer": (
        "POST",
        "/v1/customers/cus_NffrFeUfNV2Hib",
        {"description": "Updated by a workflow", "metadata": {"tier": "gold"}},
    ),
    "delete_customer": ("DELETE", "/v1/customers/cus_NffrFeUfNV2Hib", {}),
    "create_coupon": (
        "POST",
        "/v1/coupons",
        {
            "id": "SUMMER25",
            "percent_off": 25,
            "duration": "repeating",
            "duration_in_months": 3,
            "name": "Summer 25%",
        },
    ),
    "list_coupons": ("GET", "/v1/coupons", {"limit": 5}),
    "create_payment_intent": (
        "POST",
        "/v1/payment_intents",
        {
            "amount": 2000,
            "currency": "usd",
            "customer": "cus_NffrFeUfNV2Hib",
            "description": "Order 6735",
            "metadata": {"order_id": "6735"},
        },
    ),
    "get_payment_intent": ("GET", "/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa", {}),
    "cancel_payment_intent": (
        "POST",
        "/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa/cancel",
        {"cancellation_reason": "requested_by_customer"},
    ),
    "list_charges": ("GET", "/v1/charges", {"limit": 3, "customer": "cus_NffrFeUfNV2Hib"}),
    "create_charge": (
        "POST",
        "/v1/charges",
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
        "/v1/charges/ch_3MmlLrLkdIwHu7ix0snN0B15",
        {"description": "Order 6736 (shipped)", "metadata": {"shipped": "true"}},
    ),
    "get_charge": ("GET", "/v1/charges/ch_3MmlLrLkdIwHu7ix0snN0B15", {}),
    "create_refund": (
        "POST",
        "/v1/refunds",
        {
            "charge": "ch_3MmlLrLkdIwHu7ix0snN0B15",
            "amount": 1000,
            "reason": "requested_by_customer",
        },
    ),
    "get_refund": ("GET", "/v1/refunds/re_1Nispe2eZvKYlo2Cd31jOCgZ", {}),
    "attach_payment_method": (
        "POST",
        "/v1/payment_methods/pm_card_visa/attach",
        {"customer": "cus_NffrFeUfNV2Hib"},
    ),
    "get_payment_method": ("GET", "/v1/payment_methods/pm_1Q0PsIJvEtkwdCNYMSaVuRz6", {}),
    "detach_payment_method": ("POST", "/v1/payment_methods/pm_1Q0PsIJvEtkwdCNYMSaVuRz6/detach", {}),
    "create_meter_event": (
        "POST",
        "/v1/billing/meter_events",
        {
            "event_name": "api_requests",
            "payload": {"stripe_customer_id": "cus_NffrFeUfNV2Hib", "value": "3"},
        },
    ),
    "cancel_meter_event": (
        "POST",
        "/v1/billing/meter_event_adjustments",
        {
            "event_name": "api_requests",
            "type": "cancel",
            "cancel": {"identifier": "order-6735:api-call-17"},
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
    assert (call.http_method, call.path, call.params) == EXPECTED[operation]
    assert call.writes == (call.http_method == "POST")


def test_writes_lock_the_objects_they_change() -> None:
    """Updates lock their object; refunds lock the charge; attach locks both; reads nothing."""

    def locks(raw: dict[str, Any]) -> tuple[str, ...]:
        return stripe_call(msgspec.convert(raw, Request)).locks

    assert locks({"operation": "update_customer", "customer_id": "cus_1"}) == ("cus_1",)
    assert locks({"operation": "get_customer", "customer_id": "cus_1"}) == ()
    assert locks({"operation": "create_refund", "charge_id": "ch_1"}) == ("ch_1",)
    assert locks(
        {"operation": "attach_payment_method", "payment_method_id": "pm_1", "customer_id": "cus_1"}
    ) == ("pm_1", "cus_1")
    assert locks({"operation": "create_customer", "email": "a@b.co", "name": "A"}) == ()


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


@pytest.mark.parametrize("operation", OPERATION_NAMES)
def test_common_and_conductor_fields_never_reach_stripe(operation: str) -> None:
    """`iteration`, `idempotency_key`, `integration`, `reply_topic` and Conductor's fields
    change nothing in the Stripe call: same path, same parameters."""
    plain = msgspec.convert({"operation": operation, **EXAMPLE_PARAMETERS[operation]}, Request)
    enveloped = msgspec.convert(
        {
            "operation": operation,
            **EXAMPLE_PARAMETERS[operation],
            "iteration": 3,
            "idempotency_key": "order-1",
            "integration": "billing",
            "reply_topic": "stripe.replies.billing",
            "taskId": "t-1",
            "taskRefName": "ref",
            "workflowInstanceId": "wf-1",
        },
        Request,
    )
    assert enveloped.parameters() == plain.parameters()
    assert "iteration" not in enveloped.parameters()
    assert (stripe_call(enveloped).path, stripe_call(enveloped).params) == (
        stripe_call(plain).path,
        stripe_call(plain).params,
    )

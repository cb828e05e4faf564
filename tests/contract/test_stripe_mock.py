"""Stripe's own spec (stripe-mock) accepts every call the service makes, as the service
makes it: method, path, parameters and their encoding."""

from __future__ import annotations

import json

import msgspec
import pytest

from consumer.contract.errors import StripeFailure
from consumer.contract.examples import EXAMPLE_PARAMETERS, EXPECTED_OBJECT
from consumer.contract.requests import OPERATION_NAMES, CreateMeterEvent, Request
from consumer.operations import stripe_call
from consumer.settings import Settings
from consumer.stripe.calls import StripeCall
from consumer.stripe.gateway import StripeGateway

pytestmark = pytest.mark.contract


@pytest.mark.parametrize("operation", OPERATION_NAMES)
async def test_stripe_mock_accepts_the_call(
    operation: str, mock_gateway: tuple[StripeGateway, Settings]
) -> None:
    """The example request's Stripe call passes Stripe's spec and returns the right object."""
    gateway, settings = mock_gateway
    request = msgspec.convert({"operation": operation, **EXAMPLE_PARAMETERS[operation]}, Request)
    if isinstance(request, CreateMeterEvent):
        request = msgspec.structs.replace(
            request, identifier="wf:meter:0123456789abcdef", timestamp=1_780_000_000
        )
    response = await gateway.call(
        stripe_call(request),
        credential=settings.credentials["default"],
        stripe_account="acct_1Nv0FGQ9RKHgCVdK",
        idempotency_key=f"contract-{operation}",
    )
    body = json.loads(bytes(response.body))
    assert response.http_status == 200
    assert body["object"] == EXPECTED_OBJECT[operation]
    assert response.request_id


async def test_every_optional_parameter_is_accepted(
    mock_gateway: tuple[StripeGateway, Settings],
) -> None:
    """Requests with all optional fields set still pass the spec (metadata encoding included)."""
    gateway, settings = mock_gateway
    full_requests = [
        {
            "operation": "list_customers",
            "limit": 100,
            "email": "a@b.co",
            "starting_after": "cus_Abc",
        },
        {
            "operation": "update_customer",
            "customer_id": "cus_1",
            "email": "a@b.co",
            "name": "N",
            "phone_number": "+1555",
            "description": "d",
            "metadata": {"a": "b", "c": ""},
        },
        {
            "operation": "create_coupon",
            "id": "FIVE",
            "amount_off": 500,
            "currency": "EUR",
            "duration": "once",
            "name": "Five",
            "metadata": {"k": "v"},
        },
        {"operation": "list_coupons", "limit": 1, "starting_after": "FIVE"},
        {"operation": "list_charges", "limit": 1, "customer_id": "cus_1", "starting_after": "ch_1"},
        {
            "operation": "create_charge",
            "amount": 100,
            "currency": "usd",
            "customer_id": "cus_1",
            "source": "card_1",
            "metadata": {"k": "v"},
        },
        {
            "operation": "create_refund",
            "charge_id": "ch_1",
            "amount": 1,
            "reason": "duplicate",
            "metadata": {"k": "v"},
        },
        {
            "operation": "cancel_payment_intent",
            "payment_intent_id": "pi_1",
            "cancellation_reason": "abandoned",
        },
        {
            "operation": "create_meter_event",
            "event_name": "e",
            "customer_id": "cus_1",
            "identifier": "i",
            "value": "2.5",
            "timestamp": 1_780_000_000,
        },
    ]
    for raw in full_requests:
        request = msgspec.convert(raw, Request)
        response = await gateway.call(
            stripe_call(request),
            credential=settings.credentials["default"],
            stripe_account=None,
            idempotency_key="k",
        )
        assert response.http_status == 200, raw


async def test_unknown_parameter_is_a_terminal_invalid_request(
    mock_gateway: tuple[StripeGateway, Settings],
) -> None:
    """Stripe's 400 maps to a terminal invalid_request_error naming Stripe's param."""
    gateway, settings = mock_gateway
    call = StripeCall("POST", "/v1/customers", {"emial": "x@y.z"})
    with pytest.raises(StripeFailure) as caught:
        await gateway.call(
            call,
            credential=settings.credentials["default"],
            stripe_account=None,
            idempotency_key="k",
        )
    detail = caught.value.detail
    assert (detail.type, detail.http_status, detail.retryable) == (
        "invalid_request_error",
        400,
        False,
    )
    assert detail.message.startswith("Request validation error")

"""Payment intents: create, get, cancel."""

from __future__ import annotations

from typing import Any

from consumer.contract.requests import CancelPaymentIntent, CreatePaymentIntent, GetPaymentIntent
from consumer.operations.base import Operation, given, no_params


def _create_params(r: CreatePaymentIntent) -> dict[str, Any]:
    return given(
        amount=r.amount,
        currency=r.currency.lower(),
        customer=r.customer_id,
        description=r.description,
        metadata=r.metadata,
    )


def _cancel_params(r: CancelPaymentIntent) -> dict[str, Any]:
    return given(cancellation_reason=r.cancellation_reason)


def _payment_intent_id(r: GetPaymentIntent | CancelPaymentIntent) -> str:
    return r.payment_intent_id


create_payment_intent = Operation(
    CreatePaymentIntent, "POST", "/v1/payment_intents", _create_params
)
get_payment_intent = Operation(
    GetPaymentIntent,
    "GET",
    "/v1/payment_intents/{payment_intent_id}",
    no_params,
    _payment_intent_id,
)
cancel_payment_intent = Operation(
    CancelPaymentIntent,
    "POST",
    "/v1/payment_intents/{payment_intent_id}/cancel",
    _cancel_params,
    _payment_intent_id,
)

"""Payment intents: create, get, cancel."""

from __future__ import annotations

from typing import ClassVar, Literal

from msgspec import UNSET, UnsetType

from consumer.contract.requests.base import OperationRequest
from consumer.contract.requests.fields import (
    AmountCents,
    Currency,
    CustomerId,
    Metadata,
    PaymentIntentId,
    ShortText,
)


class CreatePaymentIntent(OperationRequest, tag="create_payment_intent", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Create a payment intent for an amount, optionally for a customer"
    amount: AmountCents
    currency: Currency
    customer_id: CustomerId | UnsetType | None = UNSET
    description: ShortText | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET


class GetPaymentIntent(OperationRequest, tag="get_payment_intent", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Retrieve a payment intent"
    payment_intent_id: PaymentIntentId


CancellationReason = Literal["duplicate", "fraudulent", "requested_by_customer", "abandoned"]


class CancelPaymentIntent(OperationRequest, tag="cancel_payment_intent", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Cancel a payment intent"
    payment_intent_id: PaymentIntentId
    cancellation_reason: CancellationReason | UnsetType | None = UNSET

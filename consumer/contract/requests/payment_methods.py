"""Payment methods: attach to a customer, get, detach."""

from __future__ import annotations

from typing import ClassVar

from consumer.contract.requests.base import OperationRequest
from consumer.contract.requests.fields import CustomerId, PaymentMethodId


class AttachPaymentMethod(OperationRequest, tag="attach_payment_method", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Attach a payment method to a customer"
    payment_method_id: PaymentMethodId
    customer_id: CustomerId


class GetPaymentMethod(OperationRequest, tag="get_payment_method", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Retrieve a payment method"
    payment_method_id: PaymentMethodId


class DetachPaymentMethod(OperationRequest, tag="detach_payment_method", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Detach a payment method from its customer"
    payment_method_id: PaymentMethodId

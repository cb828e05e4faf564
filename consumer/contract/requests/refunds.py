"""Refunds: create (by charge) and get."""

from __future__ import annotations

from typing import ClassVar, Literal

from msgspec import UNSET, UnsetType

from consumer.contract.requests.base import OperationRequest
from consumer.contract.requests.fields import AmountCents, ChargeId, Metadata, RefundId

RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]


class CreateRefund(OperationRequest, tag="create_refund", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Refund a charge, in full or in part"
    charge_id: ChargeId
    amount: AmountCents | UnsetType | None = UNSET
    reason: RefundReason | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET


class GetRefund(OperationRequest, tag="get_refund", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Retrieve a refund"
    refund_id: RefundId

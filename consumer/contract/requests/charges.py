"""Charges: list, create (a source or a customer), update, get."""

from __future__ import annotations

from typing import ClassVar

from msgspec import UNSET, UnsetType

from consumer.contract.requests.base import OperationRequest
from consumer.contract.requests.fields import (
    AmountCents,
    ChargeId,
    Currency,
    CustomerId,
    FieldError,
    ListLimit,
    Metadata,
    PaymentSource,
    ShortText,
    is_given,
)


class ListCharges(OperationRequest, tag="list_charges", kw_only=True, frozen=True):
    summary: ClassVar[str] = "A page of charges, optionally for one customer"
    limit: ListLimit | None = 10
    customer_id: CustomerId | UnsetType | None = UNSET
    starting_after: ChargeId | UnsetType | None = UNSET


class CreateCharge(OperationRequest, tag="create_charge", kw_only=True, frozen=True):
    summary: ClassVar[str] = (
        "Charge a source (tok_…, or card_…/ba_… with its customer) or a customer"
    )
    amount: AmountCents
    currency: Currency
    source: PaymentSource | UnsetType | None = UNSET
    customer_id: CustomerId | UnsetType | None = UNSET
    description: ShortText | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET

    def check(self, now: float) -> None:
        if not is_given(self.source) and not is_given(self.customer_id):
            raise FieldError("$.source", "At least one of `source` and `customer_id` is required")
        saved = isinstance(self.source, str) and self.source.startswith(("card_", "ba_"))
        if saved and not is_given(self.customer_id):
            raise FieldError(
                "$.customer_id", "`customer_id` is required when `source` is a saved card_… or ba_…"
            )


class UpdateCharge(OperationRequest, tag="update_charge", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Update a charge's description or metadata"
    charge_id: ChargeId
    description: ShortText | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET


class GetCharge(OperationRequest, tag="get_charge", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Retrieve a charge"
    charge_id: ChargeId

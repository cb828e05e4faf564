"""Coupons: create and list (exactly one of `percent_off` and `amount_off`)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from msgspec import UNSET, Meta, UnsetType

from consumer.contract.requests.base import OperationRequest
from consumer.contract.requests.fields import (
    AmountCents,
    CouponCode,
    Currency,
    FieldError,
    ListLimit,
    Metadata,
    MonthCount,
    MonthCountText,
    PercentOff,
    is_given,
)

CouponDuration = Literal["forever", "once", "repeating"]


class CreateCoupon(OperationRequest, tag="create_coupon", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Create a coupon: percent_off or amount_off with currency"
    id: CouponCode
    percent_off: PercentOff | UnsetType | None = UNSET
    amount_off: AmountCents | UnsetType | None = UNSET
    currency: Currency | UnsetType | None = UNSET
    duration: CouponDuration | UnsetType | None = UNSET
    duration_in_months: MonthCount | MonthCountText | UnsetType | None = UNSET
    name: Annotated[str, Meta(min_length=1, max_length=40)] | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET

    def check(self, now: float) -> None:
        if is_given(self.percent_off) == is_given(self.amount_off):
            both = is_given(self.percent_off)
            raise FieldError(
                "$.amount_off" if both else "$.percent_off",
                "Exactly one of `percent_off` and `amount_off` is required"
                + (", not both" if both else ""),
            )
        if is_given(self.amount_off) and not is_given(self.currency):
            raise FieldError("$.currency", "`currency` is required with `amount_off`")
        repeating = self.duration == "repeating"
        if repeating and not is_given(self.duration_in_months):
            raise FieldError(
                "$.duration_in_months",
                "`duration_in_months` is required when `duration` is `repeating`",
            )
        if not repeating and is_given(self.duration_in_months):
            raise FieldError(
                "$.duration_in_months",
                "`duration_in_months` is allowed only when `duration` is `repeating`",
            )
        if (
            isinstance(self.duration_in_months, str)
            and not 1 <= int(self.duration_in_months) <= 1200
        ):
            raise FieldError(
                "$.duration_in_months", "Expected a whole number of months from 1 to 1200"
            )

    @property
    def months(self) -> int | UnsetType | None:
        months = self.duration_in_months
        return int(months) if isinstance(months, str) else months


class ListCoupons(OperationRequest, tag="list_coupons", kw_only=True, frozen=True):
    summary: ClassVar[str] = "A page of coupons"
    limit: ListLimit | None = 10
    starting_after: CouponCode | UnsetType | None = UNSET

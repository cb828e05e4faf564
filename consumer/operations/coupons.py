"""Coupons: create and list."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET

from consumer.contract.requests import CreateCoupon, ListCoupons
from consumer.operations.base import Operation, given


def _create_params(r: CreateCoupon) -> dict[str, Any]:
    return given(
        id=r.id,
        percent_off=r.percent_off,
        amount_off=r.amount_off,
        currency=r.currency.lower() if isinstance(r.currency, str) else UNSET,
        duration=r.duration,
        duration_in_months=r.months,
        name=r.name,
        metadata=r.metadata,
    )


def _list_params(r: ListCoupons) -> dict[str, Any]:
    return given(limit=r.limit, starting_after=r.starting_after)


create_coupon = Operation(CreateCoupon, "POST", "/v1/coupons", _create_params)
list_coupons = Operation(ListCoupons, "GET", "/v1/coupons", _list_params)

"""Refunds: create (by charge) and get."""

from __future__ import annotations

from typing import Any

from consumer.contract.requests import CreateRefund, GetRefund
from consumer.operations.base import Operation, given, no_params


def _create_params(r: CreateRefund) -> dict[str, Any]:
    return given(charge=r.charge_id, amount=r.amount, reason=r.reason, metadata=r.metadata)


def _refund_id(r: GetRefund) -> str:
    return r.refund_id


def _refunded_charge(r: CreateRefund) -> tuple[str, ...]:
    return (r.charge_id,)


create_refund = Operation(
    CreateRefund,
    "POST",
    "/v1/refunds",
    _create_params,
    writes_to=_refunded_charge,
)
get_refund = Operation(GetRefund, "GET", "/v1/refunds/{refund_id}", no_params, _refund_id)

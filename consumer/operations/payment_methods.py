"""Payment methods: attach to a customer, get, detach."""

from __future__ import annotations

from typing import Any

from consumer.contract.requests import AttachPaymentMethod, DetachPaymentMethod, GetPaymentMethod
from consumer.operations.base import Operation, no_params


def _attach_params(r: AttachPaymentMethod) -> dict[str, Any]:
    return {"customer": r.customer_id}


def _payment_method_id(r: AttachPaymentMethod | GetPaymentMethod | DetachPaymentMethod) -> str:
    return r.payment_method_id


def _attached_objects(r: AttachPaymentMethod) -> tuple[str, ...]:
    return (r.payment_method_id, r.customer_id)


attach_payment_method = Operation(
    AttachPaymentMethod,
    "POST",
    "/v1/payment_methods/{payment_method_id}/attach",
    _attach_params,
    _payment_method_id,
    writes_to=_attached_objects,
)
get_payment_method = Operation(
    GetPaymentMethod,
    "GET",
    "/v1/payment_methods/{payment_method_id}",
    no_params,
    _payment_method_id,
)
detach_payment_method = Operation(
    DetachPaymentMethod,
    "POST",
    "/v1/payment_methods/{payment_method_id}/detach",
    no_params,
    _payment_method_id,
)

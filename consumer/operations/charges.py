"""Charges: list, create, update, get.

Stripe prefers PaymentIntents for new integrations and the SDK marks ``charges.create``
deprecated; the operation stays because workflows (and the seed's operation list) use it.
"""

from __future__ import annotations

from typing import Any

from consumer.contract.requests import CreateCharge, GetCharge, ListCharges, UpdateCharge
from consumer.operations.base import Operation, given, no_params


def _list_params(r: ListCharges) -> dict[str, Any]:
    return given(limit=r.limit, customer=r.customer_id, starting_after=r.starting_after)


def _create_params(r: CreateCharge) -> dict[str, Any]:
    return given(
        amount=r.amount,
        currency=r.currency.lower(),
        source=r.source,
        customer=r.customer_id,
        description=r.description,
        metadata=r.metadata,
    )


def _update_params(r: UpdateCharge) -> dict[str, Any]:
    return given(description=r.description, metadata=r.metadata)


def _charge_id(r: UpdateCharge | GetCharge) -> str:
    return r.charge_id


list_charges = Operation(ListCharges, "GET", "/v1/charges", _list_params)
create_charge = Operation(CreateCharge, "POST", "/v1/charges", _create_params)
update_charge = Operation(
    UpdateCharge, "POST", "/v1/charges/{charge_id}", _update_params, _charge_id
)
get_charge = Operation(GetCharge, "GET", "/v1/charges/{charge_id}", no_params, _charge_id)

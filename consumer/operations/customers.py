"""Customers: list, create, get, update, delete."""

from __future__ import annotations

from typing import Any

from consumer.contract.requests import (
    CreateCustomer,
    DeleteCustomer,
    GetCustomer,
    ListCustomers,
    UpdateCustomer,
)
from consumer.operations.base import Operation, given, no_params


def _list_params(r: ListCustomers) -> dict[str, Any]:
    return given(limit=r.limit, email=r.email, starting_after=r.starting_after)


def _contact_params(r: CreateCustomer | UpdateCustomer) -> dict[str, Any]:
    """Create and update take the same fields (all optional on update)."""
    return given(
        email=r.email,
        name=r.name,
        phone=r.phone_number,
        description=r.description,
        metadata=r.metadata,
    )


def _customer_id(r: GetCustomer | UpdateCustomer | DeleteCustomer) -> str:
    return r.customer_id


list_customers = Operation(ListCustomers, "GET", "/v1/customers", _list_params)
create_customer = Operation(CreateCustomer, "POST", "/v1/customers", _contact_params)
get_customer = Operation(GetCustomer, "GET", "/v1/customers/{customer_id}", no_params, _customer_id)
update_customer = Operation(
    UpdateCustomer,
    "POST",
    "/v1/customers/{customer_id}",
    _contact_params,
    _customer_id,
)
delete_customer = Operation(
    DeleteCustomer,
    "DELETE",
    "/v1/customers/{customer_id}",
    no_params,
    _customer_id,
)

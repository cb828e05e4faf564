"""Customers: list, create, get, update, delete."""

from __future__ import annotations

from typing import ClassVar

from msgspec import UNSET, UnsetType

from consumer.contract.requests.base import OperationRequest
from consumer.contract.requests.fields import (
    CustomerId,
    Email,
    ListLimit,
    Metadata,
    PersonName,
    PhoneNumber,
    ShortText,
)


class ListCustomers(OperationRequest, tag="list_customers", kw_only=True, frozen=True):
    summary: ClassVar[str] = "A page of customers, optionally filtered by email"
    limit: ListLimit | None = 10
    email: Email | UnsetType | None = UNSET
    starting_after: CustomerId | UnsetType | None = UNSET


class CreateCustomer(OperationRequest, tag="create_customer", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Create a customer"
    email: Email
    name: PersonName
    phone_number: PhoneNumber | UnsetType | None = UNSET
    description: ShortText | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET


class GetCustomer(OperationRequest, tag="get_customer", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Retrieve a customer"
    customer_id: CustomerId


class UpdateCustomer(OperationRequest, tag="update_customer", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Update a customer's contact details, description or metadata"
    customer_id: CustomerId
    email: Email | UnsetType | None = UNSET
    name: PersonName | UnsetType | None = UNSET
    phone_number: PhoneNumber | UnsetType | None = UNSET
    description: ShortText | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET


class DeleteCustomer(OperationRequest, tag="delete_customer", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Delete a customer"
    customer_id: CustomerId

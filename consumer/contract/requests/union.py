"""Every request in one union, decoded by its `operation` tag; the operations' names."""

from __future__ import annotations

from typing import Final

from consumer.contract.requests.balance import GetBalance
from consumer.contract.requests.base import OperationRequest
from consumer.contract.requests.charges import CreateCharge, GetCharge, ListCharges, UpdateCharge
from consumer.contract.requests.coupons import CreateCoupon, ListCoupons
from consumer.contract.requests.customers import (
    CreateCustomer,
    DeleteCustomer,
    GetCustomer,
    ListCustomers,
    UpdateCustomer,
)
from consumer.contract.requests.meter_events import CancelMeterEvent, CreateMeterEvent
from consumer.contract.requests.payment_intents import (
    CancelPaymentIntent,
    CreatePaymentIntent,
    GetPaymentIntent,
)
from consumer.contract.requests.payment_methods import (
    AttachPaymentMethod,
    DetachPaymentMethod,
    GetPaymentMethod,
)
from consumer.contract.requests.refunds import CreateRefund, GetRefund

# One union of every request, decoded by its `operation` tag. The order is the README's.
Request = (
    GetBalance
    | ListCustomers
    | CreateCustomer
    | GetCustomer
    | UpdateCustomer
    | DeleteCustomer
    | CreateCoupon
    | ListCoupons
    | CreatePaymentIntent
    | GetPaymentIntent
    | CancelPaymentIntent
    | ListCharges
    | CreateCharge
    | UpdateCharge
    | GetCharge
    | CreateRefund
    | GetRefund
    | AttachPaymentMethod
    | GetPaymentMethod
    | DetachPaymentMethod
    | CreateMeterEvent
    | CancelMeterEvent
)

REQUEST_TYPES: Final[tuple[type[OperationRequest], ...]] = Request.__args__
OPERATION_NAMES: Final[tuple[str, ...]] = tuple(str(t.__struct_config__.tag) for t in REQUEST_TYPES)

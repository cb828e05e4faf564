"""The requests: one msgspec Struct per operation, grouped by Stripe resource, their domain
types and their union. Imports only the contract's own modules.

The single source of truth for what producers may send: the decoder, the JSON Schemas in
``schemas/`` and the README's operation table are generated from these Structs. Rules that
types alone cannot say (exactly one of two fields, the timestamp window) live in each
Struct's ``check``, which raises :class:`FieldError` naming the JSON path at fault.
"""

from consumer.contract.requests.balance import GetBalance
from consumer.contract.requests.base import (
    COMMON_FIELDS,
    CONDUCTOR_FIELDS,
    ConductorFields,
    OperationRequest,
)
from consumer.contract.requests.charges import CreateCharge, GetCharge, ListCharges, UpdateCharge
from consumer.contract.requests.coupons import CouponDuration, CreateCoupon, ListCoupons
from consumer.contract.requests.customers import (
    CreateCustomer,
    DeleteCustomer,
    GetCustomer,
    ListCustomers,
    UpdateCustomer,
)
from consumer.contract.requests.fields import (
    PATTERN_MEANINGS,
    AccountId,
    AmountCents,
    ChargeId,
    CouponCode,
    Currency,
    CustomerId,
    Email,
    FieldError,
    IdempotencyKey,
    IntegrationName,
    ListLimit,
    LoopIteration,
    Metadata,
    MetadataKey,
    MetadataValue,
    MeterEventIdentifier,
    MeterEventName,
    MonthCount,
    MonthCountText,
    PaymentIntentId,
    PaymentMethodId,
    PaymentSource,
    PercentOff,
    PersonName,
    PhoneNumber,
    RefundId,
    ShortText,
    TopicName,
    UnixSeconds,
    is_given,
)
from consumer.contract.requests.meter_events import (
    MAX_METER_EVENT_AGE_SECONDS,
    MAX_METER_EVENT_LEAD_SECONDS,
    CancelMeterEvent,
    CreateMeterEvent,
    MeterValue,
)
from consumer.contract.requests.payment_intents import (
    CancellationReason,
    CancelPaymentIntent,
    CreatePaymentIntent,
    GetPaymentIntent,
)
from consumer.contract.requests.payment_methods import (
    AttachPaymentMethod,
    DetachPaymentMethod,
    GetPaymentMethod,
)
from consumer.contract.requests.refunds import CreateRefund, GetRefund, RefundReason
from consumer.contract.requests.union import OPERATION_NAMES, REQUEST_TYPES, Request

__all__ = [
    "COMMON_FIELDS",
    "CONDUCTOR_FIELDS",
    "MAX_METER_EVENT_AGE_SECONDS",
    "MAX_METER_EVENT_LEAD_SECONDS",
    "OPERATION_NAMES",
    "PATTERN_MEANINGS",
    "REQUEST_TYPES",
    "AccountId",
    "AmountCents",
    "AttachPaymentMethod",
    "CancelMeterEvent",
    "CancelPaymentIntent",
    "CancellationReason",
    "ChargeId",
    "ConductorFields",
    "CouponCode",
    "CouponDuration",
    "CreateCharge",
    "CreateCoupon",
    "CreateCustomer",
    "CreateMeterEvent",
    "CreatePaymentIntent",
    "CreateRefund",
    "Currency",
    "CustomerId",
    "DeleteCustomer",
    "DetachPaymentMethod",
    "Email",
    "FieldError",
    "GetBalance",
    "GetCharge",
    "GetCustomer",
    "GetPaymentIntent",
    "GetPaymentMethod",
    "GetRefund",
    "IdempotencyKey",
    "IntegrationName",
    "ListCharges",
    "ListCoupons",
    "ListCustomers",
    "ListLimit",
    "LoopIteration",
    "Metadata",
    "MetadataKey",
    "MetadataValue",
    "MeterEventIdentifier",
    "MeterEventName",
    "MeterValue",
    "MonthCount",
    "MonthCountText",
    "OperationRequest",
    "PaymentIntentId",
    "PaymentMethodId",
    "PaymentSource",
    "PercentOff",
    "PersonName",
    "PhoneNumber",
    "RefundId",
    "RefundReason",
    "Request",
    "ShortText",
    "TopicName",
    "UnixSeconds",
    "UpdateCharge",
    "UpdateCustomer",
    "is_given",
]

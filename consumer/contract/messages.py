"""The wire contract as msgspec Structs: one Struct per operation, one union, the reply.

This module is the single source of truth for what producers may send and what the service
answers: the decoder, the JSON Schemas in ``schemas/`` and the README's operation table are
all generated from it. It does no I/O.

Rules that types alone cannot say (exactly one of two fields, a field required when another
has a value, the timestamp window) live in each Struct's ``check`` method, which raises
:class:`FieldError` naming the JSON path of the field at fault.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Final, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

# --------------------------------------------------------------------------------------------
# Domain types: constraints named after what they mean, so each Struct reads like the spec.
# --------------------------------------------------------------------------------------------

MAX_METER_EVENT_AGE_SECONDS: Final = 35 * 24 * 3600
MAX_METER_EVENT_LEAD_SECONDS: Final = 5 * 60

AmountCents = Annotated[
    int, Meta(gt=0, le=99_999_999_999, description="Amount in the currency's smallest unit")
]
# Patterns are matched whole, and mean the same to msgspec (Python's `re.search`) and to
# the ECMA-262 engines that read the JSON Schemas. Python's bare `$` also matches before a
# trailing newline (`usd\n` would pass), and `\Z` does not exist in ECMA-262, so every pattern
# ends in `$(?!\n)`: the end of the string in both. Control characters (C0, DEL, C1) are
# excluded by explicit class ranges, which both engines read alike (`\s` alone differs).
_END: Final = r"$(?!\n)"
_CONTROL: Final = r"\x00-\x1f\x7f-\x9f"


def _whole(body: str) -> str:
    return f"^{body}{_END}"


_CURRENCY_PATTERN: Final = _whole("[A-Za-z]{3}")
_EMAIL_PART: Final = rf"[^@\s{_CONTROL}\ufeff]+"
_EMAIL_PATTERN: Final = _whole(f"{_EMAIL_PART}@{_EMAIL_PART}")
_INTEGRATION_PATTERN: Final = _whole("[A-Za-z0-9_.-]{1,64}")
_TOPIC_PATTERN: Final = _whole("[A-Za-z0-9._-]{1,249}")
_COUPON_PATTERN: Final = _whole("[A-Za-z0-9_-]{1,200}")
_MONTHS_PATTERN: Final = _whole("[0-9]{1,4}")
_METADATA_KEY_PATTERN: Final = _whole(rf"[^\[\]{_CONTROL}]+")
_SOURCE_PATTERN: Final = _whole("[A-Za-z0-9_]{1,250}")
# Identifiers Stripe takes as any string (event names, meter identifiers, idempotency keys).
_NO_CONTROL_PATTERN: Final = _whole(f"[^{_CONTROL}]+")

Currency = Annotated[
    str, Meta(pattern=_CURRENCY_PATTERN, description="Three-letter ISO code (any case)")
]
ListLimit = Annotated[int, Meta(ge=1, le=100, description="Page size, 1 to 100")]
ShortText = Annotated[str, Meta(min_length=1, max_length=5000)]
Email = Annotated[str, Meta(min_length=3, max_length=512, pattern=_EMAIL_PATTERN)]
PersonName = Annotated[str, Meta(min_length=1, max_length=256)]
PhoneNumber = Annotated[str, Meta(min_length=1, max_length=20)]
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=255, pattern=_NO_CONTROL_PATTERN)]
IntegrationName = Annotated[str, Meta(pattern=_INTEGRATION_PATTERN)]
TopicName = Annotated[str, Meta(pattern=_TOPIC_PATTERN)]
CouponCode = Annotated[str, Meta(pattern=_COUPON_PATTERN)]
PercentOff = Annotated[float, Meta(gt=0, le=100)]
MonthCount = Annotated[int, Meta(ge=1, le=1200)]
# The seed types `duration_in_months` as a string, so a numeric string is accepted too.
MonthCountText = Annotated[str, Meta(pattern=_MONTHS_PATTERN)]
MeterEventName = Annotated[str, Meta(min_length=1, max_length=100, pattern=_NO_CONTROL_PATTERN)]
MeterEventIdentifier = Annotated[
    str, Meta(min_length=1, max_length=100, pattern=_NO_CONTROL_PATTERN)
]
UnixSeconds = Annotated[int, Meta(ge=0, description="Unix time in seconds")]
LoopIteration = Annotated[
    int,
    Meta(
        ge=0,
        description="The DO_WHILE iteration this request belongs to: pass "
        "`${<loop_ref>.output.iteration}`. It enters the derived idempotency key (two "
        "iterations are two operations); never sent to Stripe, not echoed.",
    ),
]

MetadataKey = Annotated[str, Meta(min_length=1, max_length=40, pattern=_METADATA_KEY_PATTERN)]
MetadataValue = Annotated[str, Meta(max_length=500)]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Meta(max_length=50, description="Up to 50 string keys (40 chars) to string values (500)"),
]


def _stripe_id(prefix: str) -> str:
    return _whole(prefix + "[A-Za-z0-9_]{1,250}")


_CUSTOMER_ID_PATTERN: Final = _stripe_id("cus_")
_PAYMENT_INTENT_ID_PATTERN: Final = _stripe_id("pi_")
_CHARGE_ID_PATTERN: Final = _stripe_id("ch_")
_REFUND_ID_PATTERN: Final = _stripe_id("re_")
_PAYMENT_METHOD_ID_PATTERN: Final = _stripe_id("pm_")
_ACCOUNT_ID_PATTERN: Final = _stripe_id("acct_")
CustomerId = Annotated[
    str, Meta(pattern=_CUSTOMER_ID_PATTERN, description="Stripe customer id (cus_…)")
]
PaymentIntentId = Annotated[
    str, Meta(pattern=_PAYMENT_INTENT_ID_PATTERN, description="Stripe payment intent id (pi_…)")
]
ChargeId = Annotated[str, Meta(pattern=_CHARGE_ID_PATTERN, description="Stripe charge id (ch_…)")]
RefundId = Annotated[str, Meta(pattern=_REFUND_ID_PATTERN, description="Stripe refund id (re_…)")]
PaymentMethodId = Annotated[
    str, Meta(pattern=_PAYMENT_METHOD_ID_PATTERN, description="Stripe payment method id (pm_…)")
]
AccountId = Annotated[
    str, Meta(pattern=_ACCOUNT_ID_PATTERN, description="Stripe connected account id (acct_…)")
]

# What each pattern means, in the words a rejection uses ("Expected <meaning> - at `$.x`").
PATTERN_MEANINGS: Final[dict[str, str]] = {
    _CURRENCY_PATTERN: "a three-letter ISO currency code",
    _EMAIL_PATTERN: "an email address",
    _INTEGRATION_PATTERN: "an integration name (letters, digits, `_`, `.`, `-`)",
    _TOPIC_PATTERN: "a Kafka topic name",
    _COUPON_PATTERN: "a coupon code (letters, digits, `_`, `-`)",
    _MONTHS_PATTERN: "a whole number of months",
    _METADATA_KEY_PATTERN: "a metadata key without `[`, `]` or control characters",
    _SOURCE_PATTERN: "a payment source id (tok_…, card_…, ba_…, src_…)",
    _NO_CONTROL_PATTERN: "text without control characters",
    _CUSTOMER_ID_PATTERN: "a Stripe customer id (cus_…)",
    _PAYMENT_INTENT_ID_PATTERN: "a Stripe payment intent id (pi_…)",
    _CHARGE_ID_PATTERN: "a Stripe charge id (ch_…)",
    _REFUND_ID_PATTERN: "a Stripe refund id (re_…)",
    _PAYMENT_METHOD_ID_PATTERN: "a Stripe payment method id (pm_…)",
    _ACCOUNT_ID_PATTERN: "a Stripe connected account id (acct_…)",
}


class FieldError(Exception):
    """A request breaks a rule; ``param`` is the JSON path of the field at fault."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def _given(value: object) -> bool:
    """Optional fields may be absent or null (Conductor resolves a missing input to null)."""
    return value is not UNSET and value is not None


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------

# Fields every request may carry besides its operation's parameters and Conductor's fields.
COMMON_FIELDS: Final = (
    "operation",
    "idempotency_key",
    "integration",
    "stripe_account",
    "reply_topic",
    "iteration",
)


class ConductorFields(msgspec.Struct, kw_only=True, frozen=True):
    """Conductor's own fields: accepted on every request, echoed into its reply, never sent
    to Stripe. Besides these, any request field whose name starts with `_` (Orkes adds
    `_createdBy`) is echoed too."""

    taskId: str | UnsetType | None = UNSET
    taskRefName: str | UnsetType | None = UNSET
    workflowInstanceId: str | UnsetType | None = UNSET
    workflowType: str | UnsetType | None = UNSET
    workflowVersion: int | UnsetType | None = UNSET
    correlationId: str | UnsetType | None = UNSET
    taskToDomain: dict[str, str] | UnsetType | None = UNSET
    sink: str | UnsetType | None = UNSET
    asyncComplete: bool | UnsetType | None = UNSET
    event_produced: str | UnsetType | None = UNSET
    eventId: str | UnsetType | None = UNSET

    def conductor_fields(self) -> dict[str, Any]:
        """The Conductor fields that were given, ready to echo."""
        return {
            name: value for name in CONDUCTOR_FIELDS if (value := getattr(self, name)) is not UNSET
        }


CONDUCTOR_FIELDS: Final = ConductorFields.__struct_fields__


class OperationRequest(
    ConductorFields,
    tag_field="operation",
    forbid_unknown_fields=True,
    omit_defaults=True,
    kw_only=True,
    frozen=True,
):
    """Fields every operation request carries. Subclasses add their operation's parameters."""

    idempotency_key: IdempotencyKey | UnsetType | None = UNSET
    integration: IntegrationName | None = "default"  # null: `default` (see credential_name)
    stripe_account: AccountId | UnsetType | None = UNSET
    reply_topic: TopicName | UnsetType | None = UNSET
    # A common field, not one of Conductor's: Conductor puts no iteration in an EVENT task's
    # payload (the workflow author passes it), and the reply does not echo it.
    iteration: LoopIteration | UnsetType | None = UNSET

    summary: ClassVar[str] = ""

    @property
    def operation(self) -> str:
        return str(type(self).__struct_config__.tag)

    @property
    def credential_name(self) -> str:
        """The integration whose Stripe key serves this request (null means `default`)."""
        return self.integration or "default"

    def parameters(self) -> dict[str, Any]:
        """The operation's own parameters as given (no common or Conductor fields)."""
        return {
            name: value
            for name in self.__struct_fields__
            if name not in _ENVELOPE_FIELDS and (value := getattr(self, name)) is not UNSET
        }

    def check(self, now: float) -> None:
        """Cross-field rules the types cannot express; raise FieldError. ``now``: Unix time."""


_ENVELOPE_FIELDS: Final = frozenset(COMMON_FIELDS) | frozenset(CONDUCTOR_FIELDS)


class GetBalance(OperationRequest, tag="get_balance", kw_only=True, frozen=True):
    summary: ClassVar[str] = "The account's available and pending balance"


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
        if _given(self.percent_off) == _given(self.amount_off):
            both = _given(self.percent_off)
            raise FieldError(
                "$.amount_off" if both else "$.percent_off",
                "Exactly one of `percent_off` and `amount_off` is required"
                + (", not both" if both else ""),
            )
        if _given(self.amount_off) and not _given(self.currency):
            raise FieldError("$.currency", "`currency` is required with `amount_off`")
        repeating = self.duration == "repeating"
        if repeating and not _given(self.duration_in_months):
            raise FieldError(
                "$.duration_in_months",
                "`duration_in_months` is required when `duration` is `repeating`",
            )
        if not repeating and _given(self.duration_in_months):
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


class CreatePaymentIntent(OperationRequest, tag="create_payment_intent", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Create a payment intent for an amount, optionally for a customer"
    amount: AmountCents
    currency: Currency
    customer_id: CustomerId | UnsetType | None = UNSET
    description: ShortText | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET


class GetPaymentIntent(OperationRequest, tag="get_payment_intent", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Retrieve a payment intent"
    payment_intent_id: PaymentIntentId


CancellationReason = Literal["duplicate", "fraudulent", "requested_by_customer", "abandoned"]


class CancelPaymentIntent(OperationRequest, tag="cancel_payment_intent", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Cancel a payment intent"
    payment_intent_id: PaymentIntentId
    cancellation_reason: CancellationReason | UnsetType | None = UNSET


class ListCharges(OperationRequest, tag="list_charges", kw_only=True, frozen=True):
    summary: ClassVar[str] = "A page of charges, optionally for one customer"
    limit: ListLimit | None = 10
    customer_id: CustomerId | UnsetType | None = UNSET
    starting_after: ChargeId | UnsetType | None = UNSET


PaymentSource = Annotated[str, Meta(pattern=_SOURCE_PATTERN)]


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
        if not _given(self.source) and not _given(self.customer_id):
            raise FieldError("$.source", "At least one of `source` and `customer_id` is required")
        saved = isinstance(self.source, str) and self.source.startswith(("card_", "ba_"))
        if saved and not _given(self.customer_id):
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


RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]


class CreateRefund(OperationRequest, tag="create_refund", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Refund a charge, in full or in part"
    charge_id: ChargeId
    amount: AmountCents | UnsetType | None = UNSET
    reason: RefundReason | UnsetType | None = UNSET
    metadata: Metadata | UnsetType | None = UNSET


class GetRefund(OperationRequest, tag="get_refund", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Retrieve a refund"
    refund_id: RefundId


class AttachPaymentMethod(OperationRequest, tag="attach_payment_method", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Attach a payment method to a customer"
    payment_method_id: PaymentMethodId
    customer_id: CustomerId


class GetPaymentMethod(OperationRequest, tag="get_payment_method", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Retrieve a payment method"
    payment_method_id: PaymentMethodId


class DetachPaymentMethod(OperationRequest, tag="detach_payment_method", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Detach a payment method from its customer"
    payment_method_id: PaymentMethodId


MeterValue = Annotated[
    int | float | Annotated[str, Meta(min_length=1, max_length=64)],
    Meta(
        description="An integer, a decimal, or a numeric string, of at most 15 significant "
        "digits (Stripe's limit) and 12 decimals; sent to Stripe as a string"
    ),
]


class CreateMeterEvent(OperationRequest, tag="create_meter_event", kw_only=True, frozen=True):
    summary: ClassVar[str] = "Record usage for a customer on a meter, counted once per identifier"
    event_name: MeterEventName
    customer_id: CustomerId
    identifier: MeterEventIdentifier | UnsetType | None = UNSET
    value: MeterValue | None = 1
    timestamp: UnixSeconds | UnsetType | None = UNSET

    def check(self, now: float) -> None:
        self.decimal_value()  # raises FieldError when not a finite number
        if isinstance(self.timestamp, int):
            if self.timestamp < now - MAX_METER_EVENT_AGE_SECONDS:
                raise FieldError("$.timestamp", "Expected a time no more than 35 days in the past")
            if self.timestamp > now + MAX_METER_EVENT_LEAD_SECONDS:
                raise FieldError(
                    "$.timestamp", "Expected a time no more than 5 minutes in the future"
                )

    def decimal_value(self) -> str:
        """The value as Stripe wants it: a plain decimal string."""
        value = 1 if self.value is None else self.value
        if type(value) is int:  # the common case: no Decimal round trip
            if not -_METER_VALUE_LIMIT < value < _METER_VALUE_LIMIT:
                raise FieldError("$.value", _METER_VALUE_RANGE)
            return str(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise FieldError("$.value", "Expected a finite number")
        try:
            number = Decimal(value.strip() if isinstance(value, str) else repr(value))
        except InvalidOperation:
            raise FieldError("$.value", f"Expected a number, got {value!r}") from None
        if not number.is_finite():
            raise FieldError("$.value", "Expected a finite number")
        # Bound the digits before any arithmetic: "1e999999999" is a short string, and
        # writing it out (or normalising it) would take minutes or overflow.
        if number and not -_METER_VALUE_DECIMALS <= number.adjusted() < _METER_VALUE_DIGITS:
            raise FieldError("$.value", _METER_VALUE_RANGE)
        _, digits, exponent = number.normalize().as_tuple()
        if isinstance(exponent, int) and (
            exponent < -_METER_VALUE_DECIMALS or len(digits) > _METER_VALUE_DIGITS
        ):
            raise FieldError("$.value", _METER_VALUE_RANGE)
        if number == number.to_integral_value():
            return str(int(number))
        return format(number.normalize(), "f")


# A meter event's value, as the plain decimal string Stripe receives: at most 15 significant
# digits (Stripe's limit: more is refused, on the v2 stream only later, in an error report,
# and the usage is lost), so below 10^15 in magnitude (an integer's trailing zeros are digits
# in what is sent), and at most 12 decimal places. The bounds also keep a short input from
# expanding into millions of digits.
_METER_VALUE_DIGITS: Final = 15
_METER_VALUE_DECIMALS: Final = 12
_METER_VALUE_LIMIT: Final = 10**_METER_VALUE_DIGITS
_METER_VALUE_RANGE: Final = (
    "Expected a number with at most 15 significant digits (Stripe's limit) and at most "
    "12 decimals, below 10^15 in magnitude"
)


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
)

REQUEST_TYPES: Final[tuple[type[OperationRequest], ...]] = Request.__args__
OPERATION_NAMES: Final[tuple[str, ...]] = tuple(str(t.__struct_config__.tag) for t in REQUEST_TYPES)


# --------------------------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------------------------

ReplyStatus = Literal["COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR"]

# Stripe's response body, passed through byte for byte (no decode and re-encode).
StripeObjectJson = Annotated[
    msgspec.Raw,
    Meta(
        extra_json_schema={
            "type": "object",
            "description": "The Stripe object as JSON; for lists {object, data, has_more, url}",
        }
    ),
]


class ReplyError(msgspec.Struct, kw_only=True, frozen=True):
    """Why a request did not complete. ``type`` is Stripe's error type or `validation_error`."""

    type: str
    code: str | None = None
    decline_code: str | None = None
    message: str
    param: str | None = None
    http_status: int | None = None
    request_id: str | None = None
    retryable: bool = False


class Reply(ConductorFields, kw_only=True, frozen=True):
    """The one terminal answer to a request, on the reply topic, keyed by the request's key.

    Conductor's fields from the request are echoed (absent ones are omitted); any field of the
    request whose name starts with `_` is echoed as well.
    """

    operation: str | None
    status: ReplyStatus
    output: StripeObjectJson | None = None
    error: ReplyError | None = None
    reasonForIncompletion: str | None = None
    idempotency_key: str | None = None
    deduplicated: bool = False
    attempts: int = 0

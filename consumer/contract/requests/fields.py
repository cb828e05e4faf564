"""Domain types: constraints named after what they mean, so each request reads like the spec.

Every pattern is matched whole and means the same to msgspec (Python's ``re.search``) and to
the ECMA-262 engines that read the JSON Schemas; :data:`PATTERN_MEANINGS` gives each the words
a rejection uses. :class:`FieldError` is what a request's own ``check`` raises.
"""

from __future__ import annotations

from typing import Annotated, Final

from msgspec import UNSET, Meta

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
PaymentSource = Annotated[str, Meta(pattern=_SOURCE_PATTERN)]
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


def is_given(value: object) -> bool:
    """Optional fields may be absent or null (Conductor resolves a missing input to null)."""
    return value is not UNSET and value is not None

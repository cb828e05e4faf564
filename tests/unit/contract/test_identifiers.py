"""Identifiers are matched whole: a trailing newline or any other control character in an id,
currency, topic, integration, event name, identifier, key, coupon code, email or metadata key
is a validation error naming the field, never trimmed or passed on; free text may hold
newlines. The JSON Schemas' patterns mean the same to an ECMA-262 engine."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest
import regress

from consumer.cli.generated_docs import schema_documents
from consumer.contract.codec import InvalidRequest, RequestDecoder, ValidRequest
from consumer.contract.requests import PATTERN_MEANINGS

NOW = 1_780_000_000.0
decoder = RequestDecoder(max_record_bytes=4096)

CHARGE = {"operation": "create_charge", "amount": 4200, "currency": "usd", "source": "tok_visa"}
METER = {"operation": "create_meter_event", "event_name": "api_calls", "customer_id": "cus_1"}
COUPON = {"operation": "create_coupon", "id": "SPRING", "percent_off": 10}
# Newline last (the `$` hole), carriage return, tab, NUL, DEL and C1's NEL, inside or last.
CONTROLS = ["\n", "\r\n", "\t", "\x00", "\x7f", "\x85"]


def decode(value: dict[str, Any]) -> ValidRequest | InvalidRequest:
    result = decoder.decode(msgspec.json.encode(value), NOW)
    assert isinstance(result, ValidRequest | InvalidRequest), result
    return result


def rejection(value: dict[str, Any]) -> tuple[str | None, str]:
    result = decode(value)
    assert isinstance(result, InvalidRequest), f"accepted: {value!r}"
    return result.error.detail.param, result.error.detail.message


def with_controls(good: str) -> list[str]:
    """The good value with each control character appended, and inserted in the middle."""
    middle = len(good) // 2
    return [good + c for c in CONTROLS] + [good[:middle] + c + good[middle:] for c in CONTROLS]


ID_FIELDS = [
    ({"operation": "get_customer"}, "customer_id", "cus_1", "a Stripe customer id (cus_…)"),
    (
        {"operation": "get_payment_intent"},
        "payment_intent_id",
        "pi_1",
        "a Stripe payment intent id (pi_…)",
    ),
    ({"operation": "get_charge"}, "charge_id", "ch_1", "a Stripe charge id (ch_…)"),
    ({"operation": "get_refund"}, "refund_id", "re_1", "a Stripe refund id (re_…)"),
    (
        {"operation": "get_payment_method"},
        "payment_method_id",
        "pm_1",
        "a Stripe payment method id (pm_…)",
    ),
    (
        {"operation": "get_balance"},
        "stripe_account",
        "acct_1",
        "a Stripe connected account id (acct_…)",
    ),
]


@pytest.mark.parametrize(("base", "field", "good", "meaning"), ID_FIELDS)
def test_stripe_ids_with_control_characters_are_rejected(
    base: dict[str, Any], field: str, good: str, meaning: str
) -> None:
    """`cus_1\\n` and its kin: rejected naming the field, the good id accepted."""
    assert isinstance(decode({**base, field: good}), ValidRequest)
    for bad in with_controls(good):
        assert rejection({**base, field: bad}) == (
            f"$.{field}",
            f"Expected {meaning} - at `$.{field}`",
        )


# (request, field, a good value, the rejection's meaning)
TEXT_FIELDS = [
    (CHARGE, "currency", "usd", "a three-letter ISO currency code"),
    ({"operation": "get_balance"}, "reply_topic", "stripe.replies", "a Kafka topic name"),
    (
        {"operation": "get_balance"},
        "integration",
        "default",
        "an integration name (letters, digits, `_`, `.`, `-`)",
    ),
    (COUPON, "id", "SPRING", "a coupon code (letters, digits, `_`, `-`)"),
    ({"operation": "list_coupons"}, "starting_after", "SPRING", "a coupon code (letters, "
     "digits, `_`, `-`)"),
    (
        {**COUPON, "duration": "repeating"},
        "duration_in_months",
        "3",
        "a whole number of months",
    ),
    (
        {"operation": "create_charge", "amount": 4200, "currency": "usd"},
        "source",
        "tok_visa",
        "a payment source id (tok_…, card_…, ba_…, src_…)",
    ),
    (
        {"operation": "create_customer", "name": "Jenny Rosen"},
        "email",
        "jenny@example.com",
        "an email address",
    ),
    (METER, "event_name", "api_calls", "text without control characters"),
    (METER, "identifier", "usage-1", "text without control characters"),
    ({"operation": "get_balance"}, "idempotency_key", "order-6735", "text without control "
     "characters"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "field", "good", "meaning"), TEXT_FIELDS)
def test_identifier_fields_with_control_characters_are_rejected(
    base: dict[str, Any], field: str, good: str, meaning: str
) -> None:
    """Currency, topic, integration, coupon code, months, source, email, event name,
    identifier and idempotency key: matched whole, control characters rejected."""
    assert isinstance(decode({**base, field: good}), ValidRequest)
    for bad in with_controls(good):
        assert rejection({**base, field: bad}) == (
            f"$.{field}",
            f"Expected {meaning} - at `$.{field}`",
        )


def test_metadata_keys_with_control_characters_are_rejected() -> None:
    """A metadata key is an identifier at Stripe: no control characters, no `[` or `]`."""
    for bad in [*with_controls("order"), "a[b]"]:
        assert rejection({**CHARGE, "metadata": {bad: "v"}}) == (
            "$.metadata",
            "Expected a metadata key without `[`, `]` or control characters "
            "- at `key` in `$.metadata`",
        )


def test_free_text_may_hold_newlines() -> None:
    """A description, a name and a metadata value are free text: newlines pass unchanged."""
    result = decode(
        {
            "operation": "create_customer",
            "email": "jenny@example.com",
            "name": "Jenny\nRosen",
            "description": "line one\nline two\n",
            "metadata": {"note": "a\r\nb\t"},
        }
    )
    assert isinstance(result, ValidRequest)
    assert result.request.parameters()["description"] == "line one\nline two\n"
    assert result.request.parameters()["metadata"] == {"note": "a\r\nb\t"}


def _schema_patterns(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
        for key, value in node.items():
            if key == "patternProperties":
                found |= set(value)
            found |= _schema_patterns(value)
        return found
    if isinstance(node, list):
        return set().union(*(_schema_patterns(item) for item in node))
    return set()


PROBES = [
    "usd", "USD", "cus_1", "cus_1\n", "acct_9\r\n", "stripe.replies", "stripe.replies\n",
    "a@b.c", "a@b.c\n", "a\x00@b.c", "a\ufeff@b.c", "a@b\u2003c", "3", "3\n", "12345",
    "k", "k\n", "a[b]", "SPRING", "tok_visa", "tok_visa\n", "api calls", "\x85", "x\x1cy",
    "_createdBy", "", "\n",
]  # fmt: skip


def test_schema_patterns_mean_the_same_in_ecma_262() -> None:
    """Every pattern in the JSON Schemas compiles as an ECMA-262 (`u`) regex and accepts
    exactly what the decoder accepts, trailing newlines and control characters included."""
    patterns = set().union(*(_schema_patterns(doc) for doc in schema_documents().values()))
    assert set(PATTERN_MEANINGS) <= patterns
    for pattern in patterns:
        ecma = regress.Regex(pattern, "u")
        for probe in PROBES:
            python = _msgspec_accepts(pattern, probe)
            assert (ecma.find(probe) is not None) == python, (pattern, probe)


def _msgspec_accepts(pattern: str, value: str) -> bool:
    """The decoder's own check: msgspec's `Meta(pattern=...)` (an unanchored search)."""
    try:
        msgspec.convert(value, Annotated[str, msgspec.Meta(pattern=pattern)])
    except msgspec.ValidationError:
        return False
    return True

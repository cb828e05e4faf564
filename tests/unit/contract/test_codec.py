"""The codec: every kind of bad input gets the exact error naming its field; non-objects are
dead letters; valid requests decode to their Struct."""

from __future__ import annotations

import msgspec
import pytest

from consumer.contract.codec import (
    DeadLetter,
    InvalidRequest,
    RequestDecoder,
    ValidRequest,
    encode_reply,
)
from consumer.contract.reply import Reply
from consumer.contract.requests import CreateCharge, CreateMeterEvent

NOW = 1_780_000_000.0
decoder = RequestDecoder(max_record_bytes=4096)


def decode(value: dict[str, object] | bytes) -> ValidRequest | InvalidRequest | DeadLetter:
    raw = value if isinstance(value, bytes) else msgspec.json.encode(value)
    return decoder.decode(raw, NOW)


def rejection(value: dict[str, object]) -> tuple[str | None, str]:
    result = decode(value)
    assert isinstance(result, InvalidRequest), result
    return result.error.detail.param, result.error.detail.message


CHARGE = {"operation": "create_charge", "amount": 4200, "currency": "usd", "source": "tok_visa"}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b"x" * 5000, "too_large"),
        (b"\xff\xfe{}", "not_utf8"),
        (b'{"operation": "get_balance"', "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"get_balance"', "not_object"),
        (b"null", "not_object"),
    ],
)
def test_records_that_are_not_json_objects_are_dead_letters(value: bytes, reason: str) -> None:
    """Anything but a JSON object within the size limit is a dead letter with its reason."""
    result = decode(value)
    assert isinstance(result, DeadLetter)
    assert result.reason == reason


def test_deeply_nested_input_is_answered_not_raised() -> None:
    """Nesting deeper than the decoder goes: an object is an invalid request naming `$`, an
    array a dead letter; decoding never raises (it used to raise RecursionError)."""
    deep_object = b'{"operation": "get_balance", "a": ' + b"[" * 1500 + b"]" * 1500 + b"}"
    result = decode(deep_object)
    assert isinstance(result, InvalidRequest)
    assert (result.error.detail.param, result.error.detail.message) == (
        "$",
        "The request is nested too deeply to read",
    )
    assert decode(b"[" * 1500 + b"]" * 1500) == DeadLetter(
        "not_object", "The record value is JSON nested too deeply to read"
    )


def test_null_integration_and_coupon_name_mean_not_given() -> None:
    """Conductor resolves a missing workflow input to null: `integration` is then `default`
    and a coupon's `name` is not sent."""
    balance = decode({"operation": "get_balance", "integration": None})
    assert isinstance(balance, ValidRequest)
    assert balance.request.credential_name == "default"
    coupon = decode({"operation": "create_coupon", "id": "C1", "percent_off": 5, "name": None})
    assert isinstance(coupon, ValidRequest)
    from consumer.operations import stripe_call

    assert "name" not in stripe_call(coupon.request).params


def test_none_value_is_a_dead_letter() -> None:
    """A tombstone (no value) is a dead letter, not a crash."""
    assert decoder.decode(None, NOW) == DeadLetter("empty", "The record has no value")


@pytest.mark.parametrize(
    ("value", "param", "message"),
    [
        # missing
        (
            {"operation": "create_customer", "name": "Jenny"},
            "$.email",
            "Object missing required field `email`",
        ),
        # wrong type
        (
            {**CHARGE, "amount": "4200"},
            "$.amount",
            "Expected `int`, got `str` - at `$.amount`",
        ),
        ({**CHARGE, "amount": 42.5}, "$.amount", "Expected `int`, got `float` - at `$.amount`"),
        ({**CHARGE, "amount": True}, "$.amount", "Expected `int`, got `bool` - at `$.amount`"),
        # out of range
        ({**CHARGE, "amount": 0}, "$.amount", "Expected `int` >= 1 - at `$.amount`"),
        (
            {"operation": "list_customers", "limit": 101},
            "$.limit",
            "Expected `int` <= 100 - at `$.limit`",
        ),
        (
            {"operation": "create_coupon", "id": "X", "percent_off": 120},
            "$.percent_off",
            "Expected `float` <= 100.0 - at `$.percent_off`",
        ),
        (
            {**CHARGE, "currency": "dollars"},
            "$.currency",
            "Expected a three-letter ISO currency code - at `$.currency`",
        ),
        # unknown field
        (
            {**CHARGE, "ammount": 4200},
            "$.ammount",
            "Object contains unknown field `ammount`",
        ),
        # enum
        (
            {"operation": "create_refund", "charge_id": "ch_1", "reason": "angry"},
            "$.reason",
            "Invalid enum value 'angry' - at `$.reason`",
        ),
        # wrong id prefix
        (
            {"operation": "get_customer", "customer_id": "pi_123"},
            "$.customer_id",
            "Expected a Stripe customer id (cus_…) - at `$.customer_id`",
        ),
        (
            {"operation": "get_charge", "charge_id": "py_123"},
            "$.charge_id",
            "Expected a Stripe charge id (ch_…) - at `$.charge_id`",
        ),
        (
            {"operation": "get_refund", "refund_id": "ch_123"},
            "$.refund_id",
            "Expected a Stripe refund id (re_…) - at `$.refund_id`",
        ),
        (
            {"operation": "get_payment_intent", "payment_intent_id": "cus_1"},
            "$.payment_intent_id",
            "Expected a Stripe payment intent id (pi_…) - at `$.payment_intent_id`",
        ),
        (
            {"operation": "get_payment_method", "payment_method_id": "card_1"},
            "$.payment_method_id",
            "Expected a Stripe payment method id (pm_…) - at `$.payment_method_id`",
        ),
        (
            {"operation": "get_balance", "stripe_account": "acc_1"},
            "$.stripe_account",
            "Expected a Stripe connected account id (acct_…) - at `$.stripe_account`",
        ),
        # malformed metadata
        (
            {**CHARGE, "metadata": {"order": 6735}},
            "$.metadata[...]",
            "Expected `str`, got `int` - at `$.metadata[...]`",
        ),
        (
            {**CHARGE, "metadata": ["order", "6735"]},
            "$.metadata",
            "Expected `object | null`, got `array` - at `$.metadata`",
        ),
        (
            {**CHARGE, "metadata": {"k" * 41: "v"}},
            "$.metadata",
            "Expected `str` of length <= 40 - at `key` in `$.metadata`",
        ),
        (
            {**CHARGE, "metadata": {"a[b]": "v"}},
            "$.metadata",
            "Expected a metadata key without `[`, `]` or control characters "
            "- at `key` in `$.metadata`",
        ),
        (
            {**CHARGE, "metadata": {f"k{i}": "v" for i in range(51)}},
            "$.metadata",
            "Expected `object` of length <= 50 - at `$.metadata`",
        ),
        # metadata is only accepted where Stripe takes it
        (
            {"operation": "get_customer", "customer_id": "cus_1", "metadata": {"a": "b"}},
            "$.metadata",
            "Object contains unknown field `metadata`",
        ),
        # iteration: a whole number >= 0 (Conductor's DO_WHILE counts from 1; 0 is allowed)
        (
            {"operation": "get_balance", "iteration": -1},
            "$.iteration",
            "Expected `int` >= 0 - at `$.iteration`",
        ),
        (
            {"operation": "get_balance", "iteration": "2"},
            "$.iteration",
            "Expected `int | null`, got `str` - at `$.iteration`",
        ),
        (
            {"operation": "get_balance", "iteration": 1.5},
            "$.iteration",
            "Expected `int | null`, got `float` - at `$.iteration`",
        ),
        # idempotency key too long
        (
            {"operation": "get_balance", "idempotency_key": "k" * 256},
            "$.idempotency_key",
            "Expected `str` of length <= 255 - at `$.idempotency_key`",
        ),
    ],
)
def test_bad_field_gets_exact_error(value: dict[str, object], param: str, message: str) -> None:
    """Each kind of bad field is rejected with msgspec's wording and its JSON path."""
    assert rejection(value) == (param, message)


OPERATIONS_HINT = (
    "expected one of: get_balance, list_customers, create_customer, get_customer, "
    "update_customer, delete_customer, create_coupon, list_coupons, create_payment_intent, "
    "get_payment_intent, cancel_payment_intent, list_charges, create_charge, update_charge, "
    "get_charge, create_refund, get_refund, attach_payment_method, get_payment_method, "
    "detach_payment_method, create_meter_event, cancel_meter_event"
)


def test_missing_operation_names_operation() -> None:
    """A JSON object without `operation` is a validation error on `$.operation`."""
    assert rejection({"amount": 1}) == ("$.operation", f"Missing `operation`; {OPERATIONS_HINT}")


def test_unknown_operation_names_operation() -> None:
    """An unknown operation is a validation error on `$.operation` listing the valid ones."""
    assert rejection({"operation": "create_token"}) == (
        "$.operation",
        f"Unknown `operation`; {OPERATIONS_HINT}",
    )


def test_operation_of_wrong_type_names_operation() -> None:
    """`operation` must be a string."""
    assert rejection({"operation": 7})[0] == "$.operation"


@pytest.mark.parametrize(
    ("value", "param", "message"),
    [
        (
            {"operation": "create_coupon", "id": "X"},
            "$.percent_off",
            "Exactly one of `percent_off` and `amount_off` is required",
        ),
        (
            {"operation": "create_coupon", "id": "X", "percent_off": 5, "amount_off": 5},
            "$.amount_off",
            "Exactly one of `percent_off` and `amount_off` is required, not both",
        ),
        (
            {"operation": "create_coupon", "id": "X", "amount_off": 500},
            "$.currency",
            "`currency` is required with `amount_off`",
        ),
        (
            {"operation": "create_coupon", "id": "X", "percent_off": 5, "duration": "repeating"},
            "$.duration_in_months",
            "`duration_in_months` is required when `duration` is `repeating`",
        ),
        (
            {
                "operation": "create_coupon",
                "id": "X",
                "percent_off": 5,
                "duration": "once",
                "duration_in_months": 3,
            },
            "$.duration_in_months",
            "`duration_in_months` is allowed only when `duration` is `repeating`",
        ),
        (
            {
                "operation": "create_coupon",
                "id": "X",
                "percent_off": 5,
                "duration": "repeating",
                "duration_in_months": "0",
            },
            "$.duration_in_months",
            "Expected a whole number of months from 1 to 1200",
        ),
        (
            {"operation": "create_charge", "amount": 5, "currency": "usd"},
            "$.source",
            "At least one of `source` and `customer_id` is required",
        ),
        (
            {"operation": "create_charge", "amount": 5, "currency": "usd", "source": "card_1"},
            "$.customer_id",
            "`customer_id` is required when `source` is a saved card_… or ba_…",
        ),
        (
            {"operation": "create_charge", "amount": 5, "currency": "usd", "source": "ba_1"},
            "$.customer_id",
            "`customer_id` is required when `source` is a saved card_… or ba_…",
        ),
        (
            {
                "operation": "create_meter_event",
                "event_name": "e",
                "customer_id": "cus_1",
                "value": "ten",
            },
            "$.value",
            "Expected a number, got 'ten'",
        ),
        (
            {
                "operation": "create_meter_event",
                "event_name": "e",
                "customer_id": "cus_1",
                "value": "NaN",
            },
            "$.value",
            "Expected a finite number",
        ),
        (
            {
                "operation": "create_meter_event",
                "event_name": "e",
                "customer_id": "cus_1",
                "timestamp": int(NOW) - 36 * 86400,
            },
            "$.timestamp",
            "Expected a time no more than 35 days in the past",
        ),
        (
            {
                "operation": "create_meter_event",
                "event_name": "e",
                "customer_id": "cus_1",
                "timestamp": int(NOW) + 301,
            },
            "$.timestamp",
            "Expected a time no more than 5 minutes in the future",
        ),
    ],
)
def test_cross_field_rules(value: dict[str, object], param: str, message: str) -> None:
    """Each cross-field rule of the contract is a validation error naming the field."""
    assert rejection(value) == (param, message)


METER_VALUE_RANGE = (
    "Expected a number with at most 15 significant digits (Stripe's limit) and at most "
    "12 decimals, below 10^15 in magnitude"
)


@pytest.mark.parametrize(
    "value",
    [
        "1e999999999",
        "1e-999999999",
        10**18,
        -(10**18),
        1e300,
        "0.0000000000001",
        # More than Stripe's 15 significant digits: Stripe refuses them (on the v2 stream
        # only later, in an error report), so they never pass validation.
        10**15,
        -(10**15),
        "1000000000000000",
        12_345_678_901_234_567,
        "1234567890.123456",
        "1.0000000000000001",
        0.30000000000000004,  # 0.1 + 0.2 as a producer's float arithmetic writes it
        "-99999999999999.99",
    ],
)
def test_meter_value_out_of_range_is_rejected_at_once(value: object) -> None:
    """A value too large, too fine or with more than 15 significant digits is a validation
    error naming `$.value`, not millions of digits. (Before the bound, 1e999999999 spent
    minutes in Decimal's C code holding the GIL, out of reach of any in-process timeout: a
    regression shows as a hang.)"""
    found = rejection(
        {
            "operation": "create_meter_event",
            "event_name": "e",
            "customer_id": "cus_1",
            "value": value,
        }
    )
    assert found == ("$.value", METER_VALUE_RANGE)


def test_meter_event_timestamp_at_the_window_edges_is_accepted() -> None:
    """35 days back and 5 minutes ahead are inside the window."""
    for timestamp in (int(NOW) - 35 * 86400 + 1, int(NOW) + 300):
        result = decode(
            {
                "operation": "create_meter_event",
                "event_name": "e",
                "customer_id": "cus_1",
                "timestamp": timestamp,
            }
        )
        assert isinstance(result, ValidRequest)


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (3, "3"),
        (2.5, "2.5"),
        ("1.50", "1.5"),
        ("10", "10"),
        ("1e2", "100"),
        (0, "0"),
        (-4, "-4"),
        (10**15 - 1, "999999999999999"),
        (-(10**15) + 1, "-999999999999999"),
        ("1e14", "100000000000000"),
        ("123456789.012345", "123456789.012345"),
        ("-99999999999999.9", "-99999999999999.9"),
        ("1.50000000000000000000", "1.5"),  # trailing zeros are not significant
        (0.1, "0.1"),
        ("0.000000000001", "0.000000000001"),
        ("0.000123456789", "0.000123456789"),
    ],
)
def test_meter_value_is_sent_as_a_decimal_string(value: object, sent: str) -> None:
    """`value` accepts an integer, a decimal or a numeric string and becomes a string."""
    result = decode(
        {
            "operation": "create_meter_event",
            "event_name": "e",
            "customer_id": "cus_1",
            "value": value,
        }
    )
    assert isinstance(result, ValidRequest)
    assert isinstance(result.request, CreateMeterEvent)
    assert result.request.decimal_value() == sent


def test_conductor_fields_and_underscore_fields_are_accepted() -> None:
    """Conductor's fields are accepted; `_`-prefixed fields are kept aside for the reply."""
    result = decode(
        {
            **CHARGE,
            "taskId": "t-1",
            "taskRefName": "charge_card",
            "workflowInstanceId": "wf-1",
            "workflowType": "checkout",
            "workflowVersion": 2,
            "correlationId": None,
            "taskToDomain": {},
            "sink": "kafka:stripe.requests",
            "asyncComplete": True,
            "event_produced": "kafka:stripe.requests",
            "eventId": "ev-1",
            "_createdBy": "jane@example.com",
        }
    )
    assert isinstance(result, ValidRequest)
    assert isinstance(result.request, CreateCharge)
    assert result.passthrough == {"_createdBy": "jane@example.com"}
    assert result.request.conductor_fields()["workflowVersion"] == 2
    assert result.request.parameters() == {"amount": 4200, "currency": "usd", "source": "tok_visa"}


def test_invalid_request_keeps_readable_conductor_fields() -> None:
    """A rejected request still echoes the Conductor fields it had (ill-typed ones dropped)."""
    result = decode({**CHARGE, "amount": -1, "taskId": "t-9", "workflowVersion": "two", "_x": 1})
    assert isinstance(result, InvalidRequest)
    assert result.conductor.taskId == "t-9"
    assert result.conductor.conductor_fields() == {"taskId": "t-9"}
    assert result.operation == "create_charge"
    assert result.passthrough == {"_x": 1}


def test_cross_field_rejection_keeps_operation_and_conductor_fields() -> None:
    """A request that decodes but breaks a rule still echoes everything for its reply."""
    result = decode(
        {
            "operation": "create_charge",
            "amount": 5,
            "currency": "usd",
            "taskId": "t-3",
            "_by": "x",
            "reply_topic": "r",
        }
    )
    assert isinstance(result, InvalidRequest)
    assert (result.operation, result.conductor.taskId) == ("create_charge", "t-3")
    assert (result.passthrough, result.reply_topic) == ({"_by": "x"}, "r")


def test_duration_in_months_accepts_numeric_string() -> None:
    """The seed types duration_in_months as a string; both forms are accepted."""
    for months in (3, "3"):
        result = decode(
            {
                "operation": "create_coupon",
                "id": "X",
                "percent_off": 5,
                "duration": "repeating",
                "duration_in_months": months,
            }
        )
        assert isinstance(result, ValidRequest)


def test_encode_reply_puts_underscore_fields_first() -> None:
    """`_` fields of the request are echoed as given, in one valid JSON object."""
    reply = Reply(
        taskId="t",
        operation="get_balance",
        status="COMPLETED",
        output=msgspec.Raw(b'{"object":"balance"}'),
    )
    encoded = encode_reply(reply, {"_createdBy": "me", "_n": 1})
    decoded = msgspec.json.decode(encoded)
    assert list(decoded)[:3] == ["_createdBy", "_n", "taskId"]
    assert decoded["output"] == {"object": "balance"}
    assert decoded["error"] is None


def test_null_optional_parameters_mean_not_given() -> None:
    """Conductor resolves a missing workflow input to null: optional fields accept it."""
    from consumer.operations import stripe_call

    result = decode(
        {
            **CHARGE,
            "description": None,
            "metadata": None,
            "customer_id": None,
            "stripe_account": None,
            "reply_topic": None,
        }
    )
    assert isinstance(result, ValidRequest)
    assert stripe_call(result.request).params == {
        "amount": 4200,
        "currency": "usd",
        "source": "tok_visa",
    }
    listing = decode({"operation": "list_customers", "limit": None, "email": None})
    assert isinstance(listing, ValidRequest)
    assert stripe_call(listing.request).params == {}


def test_null_required_parameter_is_still_an_error() -> None:
    """A required field may not be null."""
    assert rejection({**CHARGE, "amount": None}) == (
        "$.amount",
        "Expected `int`, got `null` - at `$.amount`",
    )

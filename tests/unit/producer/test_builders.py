"""The producer helper refuses what the service would refuse, before anything is sent."""

from __future__ import annotations

import msgspec
import pytest

from consumer.contract.requests import CreateCharge, CreateMeterEvent
from consumer.producer import FieldError, MeterEventProducer, encode_request


def test_a_valid_request_is_encoded_as_the_service_reads_it() -> None:
    """The JSON carries the operation tag and the parameters, nothing unset."""
    value = encode_request(CreateCharge(amount=500, currency="usd", source="tok_visa"))
    assert msgspec.json.decode(value) == {
        "operation": "create_charge",
        "amount": 500,
        "currency": "usd",
        "source": "tok_visa",
    }


def test_a_limit_the_types_cannot_say_names_the_field() -> None:
    """A negative amount type-checks in Python; the service's decoder names `$.amount`."""
    with pytest.raises(FieldError) as raised:
        encode_request(CreateCharge(amount=-5, currency="usd", source="tok_visa"))
    assert raised.value.param == "$.amount"


def test_a_cross_field_rule_is_checked_too() -> None:
    """A meter event from 40 days ago breaks the timestamp window: `$.timestamp`."""
    event = CreateMeterEvent(
        event_name="api_requests", customer_id="cus_1", identifier="i-1", timestamp=1_000
    )
    with pytest.raises(FieldError) as raised:
        encode_request(event, now=1_000 + 40 * 86_400)
    assert raised.value.param == "$.timestamp"


async def test_meter_event_without_identifier_is_refused_before_sending() -> None:
    """The producer requires an identifier (it is the record key and Stripe's dedup key);
    nothing is sent, so no broker is needed to see the refusal."""
    producer = MeterEventProducer("127.0.0.1:1", "meter")
    event = CreateMeterEvent(event_name="api_requests", customer_id="cus_1")
    with pytest.raises(FieldError) as raised:
        await producer.send_event(event)
    assert raised.value.param == "$.identifier"
    with pytest.raises(FieldError) as raised:
        await producer.send(event_name="api_requests", customer_id="cus_1", identifier="")
    assert raised.value.param == "$.identifier"

"""The `stripe.meter-errors` record: the fields the contract lists, decoded strictly."""

from __future__ import annotations

import msgspec
import pytest

from consumer.contract.meter_errors import MeterErrorRecord

_RECORD = {
    "identifier": "evt-1",
    "event_name": "api_requests",
    "code": "meter_event_customer_not_found",
    "message": "No customer cus_x",
    "error_count": 1,
    "sample": True,
    "meter_id": "mtr_1",
    "stripe_event_id": "evt_test_1",
    "integration": "default",
    "stripe_account": None,
    "reported_at": "2026-12-04T10:00:00Z",
}


def test_a_contract_record_round_trips() -> None:
    """A record with every field the contract names decodes and encodes unchanged."""
    record = msgspec.json.decode(msgspec.json.encode(_RECORD), type=MeterErrorRecord)
    assert msgspec.json.decode(msgspec.json.encode(record)) == _RECORD


@pytest.mark.parametrize("missing", sorted(_RECORD))
def test_every_field_is_required(missing: str) -> None:
    """No field may be left out: a reader can rely on each key being present (null or not)."""
    partial = {k: v for k, v in _RECORD.items() if k != missing}
    with pytest.raises(msgspec.ValidationError, match=missing):
        msgspec.json.decode(msgspec.json.encode(partial), type=MeterErrorRecord)


def test_error_count_is_at_least_one() -> None:
    """A record stands for at least one event that did not count."""
    with pytest.raises(msgspec.ValidationError, match="error_count"):
        msgspec.json.decode(
            msgspec.json.encode({**_RECORD, "error_count": 0}), type=MeterErrorRecord
        )

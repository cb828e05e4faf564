"""Stripe's meter error reports, and the ``stripe.meter-errors`` records each becomes.

A report is a v2 event (``v1.billing.meter.error_report_triggered``, or
``v1.billing.meter.no_meter_found``, which names no meter) whose ``data.reason.error_types[]``
each carry a ``code``, an ``error_count`` and ``sample_errors[]`` naming some failing
requests by ``request.identifier``. One record per named identifier, and where the count
exceeds the identifiers named, one record for the rest (``identifier`` null, key the meter).
"""

from __future__ import annotations

import time
from typing import Any, Final

import msgspec

from consumer.contract.meter_errors import MeterErrorRecord
from consumer.kafka.records import OutboundRecord

ERROR_REPORT: Final = "v1.billing.meter.error_report_triggered"
NO_METER_FOUND: Final = "v1.billing.meter.no_meter_found"
REPORT_TYPES: Final = (ERROR_REPORT, NO_METER_FOUND)
_encoder = msgspec.json.Encoder()


class _Request(msgspec.Struct):
    identifier: str | None = None


class SampleError(msgspec.Struct):
    error_message: str = ""
    request: _Request = msgspec.field(default_factory=_Request)


class ErrorType(msgspec.Struct):
    code: str
    error_count: int
    sample_errors: list[SampleError] = []


class _Reason(msgspec.Struct):
    error_types: list[ErrorType] = []


class _Data(msgspec.Struct):
    reason: _Reason = msgspec.field(default_factory=_Reason)


class RelatedObject(msgspec.Struct):
    id: str
    type: str = ""


class ThinEvent(msgspec.Struct):
    """What the event destination pushes (and what ``GET /v2/core/events`` lists)."""

    id: str
    type: str
    created: str = ""
    context: str | None = None
    related_object: RelatedObject | None = None


class ErrorReport(ThinEvent):
    """The whole event (``GET /v2/core/events/{id}``)."""

    data: _Data = msgspec.field(default_factory=_Data)


def decode_thin(body: bytes) -> ThinEvent:
    return msgspec.json.decode(body, type=ThinEvent)


def decode_report(body: bytes) -> ErrorReport:
    return msgspec.json.decode(body, type=ErrorReport)


def rejections(report: ErrorReport) -> list[tuple[str, str]]:
    """(identifier, code) for every identifier the report names."""
    return [
        (sample.request.identifier, error.code)
        for error in report.data.reason.error_types
        for sample in error.sample_errors
        if sample.request.identifier
    ]


def error_records(
    report: ErrorReport,
    *,
    integration: str,
    event_names: dict[str, str],
    topic: str,
    now: float | None = None,
) -> list[OutboundRecord]:
    """The records on ``stripe.meter-errors`` for one report (``event_names``: meter id ->
    event name, where known)."""
    meter_id = report.related_object.id if report.related_object else None
    moment = time.time() if now is None else now
    reported_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
    records: list[OutboundRecord] = []
    for error in report.data.reason.error_types:
        named = [s for s in error.sample_errors if s.request.identifier]
        fields: dict[str, Any] = {
            "event_name": event_names.get(meter_id or ""),
            "code": error.code,
            "meter_id": meter_id,
            "stripe_event_id": report.id,
            "integration": integration,
            "stripe_account": report.context,
            "reported_at": reported_at,
        }
        for sample in named:
            value = MeterErrorRecord(
                identifier=sample.request.identifier,
                message=sample.error_message,
                error_count=1,
                sample=True,
                **fields,
            )
            key = (sample.request.identifier or "").encode()
            records.append(OutboundRecord(topic, key, _encoder.encode(value)))
        rest = error.error_count - len(named)
        if rest > 0:
            message = f"{rest} more events failed {error.code}; Stripe named only a sample"
            value = MeterErrorRecord(
                identifier=None, message=message, error_count=rest, sample=False, **fields
            )
            records.append(
                OutboundRecord(topic, (meter_id or report.id).encode(), _encoder.encode(value))
            )
    return records

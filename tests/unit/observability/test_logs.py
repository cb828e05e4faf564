"""The JSON log line: its timestamp, its fields, and the redactor on every line."""

from __future__ import annotations

import json
import logging

from consumer.observability.logs import JsonFormatter
from consumer.observability.redaction import Redactor


def record_at(created: float, message: str, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("stripe_consumer", logging.INFO, "x.py", 1, message, (), None)
    record.created = created
    record.msecs = round((created - int(created)) * 1000, 3)
    record.__dict__.update(fields)
    return record


def test_timestamps_are_utc_to_the_millisecond_across_seconds() -> None:
    """Lines within one second and in the next each carry their own time (the second's text
    is cached, and must change with the second)."""
    formatter = JsonFormatter(Redactor())
    stamps = [
        json.loads(formatter.format(record_at(t, "request")))["ts"]
        for t in (1_700_000_000.123, 1_700_000_000.987, 1_700_000_001.004)
    ]
    assert stamps == [
        "2023-11-14T22:13:20.123Z",
        "2023-11-14T22:13:20.987Z",
        "2023-11-14T22:13:21.004Z",
    ]


def test_fields_are_in_the_line_and_secrets_are_masked() -> None:
    """Extra fields appear as JSON keys; a key-shaped value is masked."""
    line = JsonFormatter(Redactor()).format(
        record_at(1_700_000_000.5, "request", taskId="t-1", error="sk_test_abcdef123 rejected")
    )
    entry = json.loads(line)
    assert (entry["event"], entry["level"], entry["taskId"]) == ("request", "info", "t-1")
    assert entry["error"] == "sk_test_[redacted] rejected"

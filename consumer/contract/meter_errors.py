"""The record on ``stripe.meter-errors``: a meter event that did not count, and why.

One record per identifier Stripe named (or the service refused before sending), keyed by
the identifier; and, where Stripe's error report counts more failures than it names, one
record for the rest of that error type, keyed by the meter id, with ``identifier`` null.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

Rfc3339 = Annotated[str, Meta(description="RFC 3339 time, UTC", examples=["2026-12-04T10:00:00Z"])]


class MeterErrorRecord(msgspec.Struct, kw_only=True, frozen=True):
    """Usage that did not count in Stripe: refused before sending, or rejected afterwards."""

    identifier: Annotated[
        str | None,
        Meta(description="The meter event's identifier; null on the record for the unnamed rest"),
    ]
    event_name: str | None
    code: Annotated[
        str,
        Meta(description="Stripe's error code (e.g. `no_meter`), or `validation_error`"),
    ]
    message: str
    error_count: Annotated[
        int,
        Meta(ge=1, description="How many events this record stands for: 1 for a named identifier"),
    ]
    sample: Annotated[
        bool, Meta(description="True when the identifier came from the sample in Stripe's report")
    ]
    meter_id: Annotated[
        str | None,
        Meta(
            description="Null for `no_meter_found` (it names no meter) and refusals before sending"
        ),
    ]
    stripe_event_id: Annotated[
        str | None,
        Meta(description="The v2 thin event that reported it; null for a refusal before sending"),
    ]
    integration: str
    stripe_account: str | None
    reported_at: Rfc3339

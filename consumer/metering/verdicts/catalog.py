"""The active meters, read at start and refreshed every ``CONSUMER_METERS_REFRESH_SECONDS``:
what lets the service refuse, before sending, a meter event no active meter would count.

Refused (a validation error naming the field): an ``event_name`` with no active meter
(Stripe would report ``no_meter``, or ``archived_meter`` for an inactive one); a meter whose
``customer_mapping.event_payload_key`` is not ``stripe_customer_id`` (the service's payload
key: Stripe would report ``meter_event_no_customer_defined``); a meter that sums or keeps the
last value from a payload key other than ``value`` (``meter_event_invalid_value``). Until
the first read succeeds nothing is refused (the service never guesses). The meters read are
those of the `default` integration's own account: events for other integrations or for
connected accounts are not checked."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec

from consumer.contract.errors import RequestRejected
from consumer.contract.requests import CreateMeterEvent
from consumer.metering.verdicts.intake import StripeReader
from consumer.observability.logs import get_logger

CUSTOMER_KEY = "stripe_customer_id"
VALUE_KEY = "value"
_log = get_logger()


class _Mapping(msgspec.Struct):
    event_payload_key: str = CUSTOMER_KEY


class _ValueSettings(msgspec.Struct):
    event_payload_key: str = VALUE_KEY


class _Aggregation(msgspec.Struct):
    formula: str = "sum"


class Meter(msgspec.Struct):
    id: str
    event_name: str
    status: str = "active"
    customer_mapping: _Mapping = msgspec.field(default_factory=_Mapping)
    value_settings: _ValueSettings = msgspec.field(default_factory=_ValueSettings)
    default_aggregation: _Aggregation = msgspec.field(default_factory=_Aggregation)


class _MeterPage(msgspec.Struct):
    data: list[Meter] = []
    has_more: bool = False


class MeterCatalog:
    def __init__(self) -> None:
        self.active: dict[str, Meter] | None = None  # event name -> meter; None: not read yet

    def check(self, request: CreateMeterEvent) -> None:
        """RequestRejected naming the field when no active meter would count the event."""
        if self.active is None or request.credential_name != "default":
            return  # the meters read are the `default` integration's platform account's
        if isinstance(request.stripe_account, str):
            return
        meter = self.active.get(request.event_name)
        if meter is None:
            raise RequestRejected(
                "$.event_name",
                f"No active meter has event_name {request.event_name!r}: Stripe would not "
                "count the event (no_meter, or archived_meter for an inactive meter)",
            )
        if meter.customer_mapping.event_payload_key != CUSTOMER_KEY:
            raise RequestRejected(
                "$.customer_id",
                f"Meter {meter.id} reads the customer from payload key "
                f"{meter.customer_mapping.event_payload_key!r}; the service sends {CUSTOMER_KEY!r}",
            )
        uses_value = meter.default_aggregation.formula != "count"
        if uses_value and meter.value_settings.event_payload_key != VALUE_KEY:
            raise RequestRejected(
                "$.value",
                f"Meter {meter.id} reads the value from payload key "
                f"{meter.value_settings.event_payload_key!r}; the service sends {VALUE_KEY!r}",
            )

    async def refresh(self, reader: StripeReader, integration: str) -> None:
        """Read every active meter (all pages)."""
        active: dict[str, Meter] = {}
        params: dict[str, object] = {"status": "active", "limit": 100}
        while True:
            body = await reader.get(integration, "/v1/billing/meters", params)
            page = msgspec.json.decode(body, type=_MeterPage)
            active.update((m.event_name, m) for m in page.data if m.status == "active")
            if not page.has_more or not page.data:
                break
            params = {**params, "starting_after": page.data[-1].id}
        self.active = active

    async def try_refresh(self, reader: StripeReader, integration: str) -> None:
        try:
            await self.refresh(reader, integration)
        except Exception as exc:  # keep the last list (or none: refuse nothing); say so
            _log.warning("reading the active meters failed", extra={"error": repr(exc)})

    async def keep_fresh(
        self, reader: StripeReader, integration: str, every_seconds: float, stop: asyncio.Event
    ) -> None:
        """Read again every ``every_seconds`` (the first read is at start, before consuming)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_seconds)
            if not stop.is_set():
                await self.try_refresh(reader, integration)

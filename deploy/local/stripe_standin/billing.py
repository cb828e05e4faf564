"""Stripe's billing meters as the stand-in plays them: meters (create, list, deactivate,
reactivate), the later verdict on every meter event, event summaries that count only
accepted events, and cancel adjustments.

As on Stripe's v2 stream, a meter event is accepted first and validated afterwards: an event
for an event name with no meter (``no_meter``), an inactive meter (``archived_meter``), a
customer that does not exist (``meter_event_customer_not_found``) or is missing
(``meter_event_no_customer_defined``), a value that is not a number
(``meter_event_invalid_value``), or a timestamp outside 35 days back / 5 minutes ahead
(``timestamp_too_far_in_past`` / ``timestamp_in_future``) does not count, and is reported
later in a thin event (``events.py``). The model is on once a meter exists (after a reset
there is none, and meter events are only counted, as before: the benchmark stays cheap).
"""

from __future__ import annotations

import calendar
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from .config import Controls
from .events import ThinEvents
from .wire import error, form, new_id, ok

MAX_AGE_SECONDS = 35 * 24 * 3600
MAX_LEAD_SECONDS = 5 * 60


@dataclass
class Meter:
    id: str
    event_name: str
    display_name: str
    formula: str  # "sum" | "count" | "last"
    customer_key: str
    value_key: str
    status: str = "active"
    created: int = 0

    def as_object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "billing.meter",
            "created": self.created,
            "display_name": self.display_name,
            "event_name": self.event_name,
            "status": self.status,
            "default_aggregation": {"formula": self.formula},
            "customer_mapping": {"event_payload_key": self.customer_key, "type": "by_id"},
            "value_settings": {"event_payload_key": self.value_key},
            "livemode": False,
        }


@dataclass(frozen=True)
class Accepted:
    """A counted event: what an event summary adds up, and what a cancel takes away."""

    meter_id: str
    customer: str
    timestamp: int
    value: Decimal


class Billing:
    def __init__(self, controls: Controls, customers: set[str], events: ThinEvents) -> None:
        self._controls = controls
        self._customers = customers  # the resources' live set: created and not deleted
        self._events = events
        self.reset()

    def reset(self) -> None:
        self.meters: dict[str, Meter] = {}
        self.accepted: dict[str, Accepted] = {}  # identifier -> what counted
        self.rejected: dict[str, str] = {}  # identifier -> error code
        self.cancelled: set[str] = set()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/billing/meters", self._create_meter),
            web.get("/v1/billing/meters", self._list_meters),
            web.get("/v1/billing/meters/{id}", self._get_meter),
            web.post("/v1/billing/meters/{id}/deactivate", self._set_status("inactive")),
            web.post("/v1/billing/meters/{id}/reactivate", self._set_status("active")),
            web.get("/v1/billing/meters/{id}/event_summaries", self._event_summaries),
            web.post("/v1/billing/meter_event_adjustments", self._adjust),
        ]

    # -- the verdict on each event ------------------------------------------------------

    def judge(self, events: list[dict[str, Any]], account: str | None) -> None:
        """Count each event, or queue its rejection for the next error report."""
        if not self.meters:
            return
        now = self._controls.now()
        for event in events:
            identifier = str(event.get("identifier"))
            code, meter = self._verdict(event, now)
            if code is None and meter is not None:
                payload = event.get("payload") or {}
                self.rejected.pop(identifier, None)  # a corrected resend (see the README)
                self.accepted[identifier] = Accepted(
                    meter.id,
                    str(payload[meter.customer_key]),
                    _timestamp(event.get("timestamp"), now),
                    Decimal(str(payload.get(meter.value_key, "1"))),
                )
            elif code is not None:
                self.rejected[identifier] = code
                self._events.reject(
                    meter.id if meter else None,
                    str(event.get("event_name")),
                    code,
                    identifier,
                    account,
                )

    def _verdict(self, event: dict[str, Any], now: float) -> tuple[str | None, Meter | None]:
        meter = next(
            (m for m in self.meters.values() if m.event_name == event.get("event_name")), None
        )
        if meter is None:
            return "no_meter", None
        if meter.status != "active":
            return "archived_meter", meter
        payload = event.get("payload") or {}
        customer = payload.get(meter.customer_key)
        if customer is None:
            return "meter_event_no_customer_defined", meter
        if str(customer) not in self._customers:
            return "meter_event_customer_not_found", meter
        try:
            value = Decimal(str(payload.get(meter.value_key, "1")))
        except InvalidOperation:
            return "meter_event_invalid_value", meter
        if not value.is_finite():
            return "meter_event_invalid_value", meter
        timestamp = _timestamp(event.get("timestamp"), now)
        if timestamp > now + MAX_LEAD_SECONDS:
            return "timestamp_in_future", meter
        if timestamp < now - MAX_AGE_SECONDS:
            return "timestamp_too_far_in_past", meter
        return None, meter

    # -- meters ---------------------------------------------------------------------------

    async def _create_meter(self, request: web.Request) -> web.Response:
        params = form(await request.post())
        meter = Meter(
            id=new_id("mtr"),
            event_name=str(params["event_name"]),
            display_name=str(params.get("display_name", params["event_name"])),
            formula=str((params.get("default_aggregation") or {}).get("formula", "sum")),
            customer_key=str(
                (params.get("customer_mapping") or {}).get(
                    "event_payload_key", "stripe_customer_id"
                )
            ),
            value_key=str((params.get("value_settings") or {}).get("event_payload_key", "value")),
            created=int(time.time()),
        )
        if any(m.event_name == meter.event_name for m in self.meters.values()):
            return error(400, "invalid_request_error", "A meter exists for this event_name", None)
        self.meters[meter.id] = meter
        return ok(meter.as_object())

    async def _list_meters(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
        meters = [m.as_object() for m in self.meters.values() if status in (None, m.status)]
        return ok(
            {"object": "list", "url": "/v1/billing/meters", "has_more": False, "data": meters}
        )

    async def _get_meter(self, request: web.Request) -> web.Response:
        meter = self.meters.get(request.match_info["id"])
        if meter is None:
            return error(404, "invalid_request_error", "No such meter", "resource_missing")
        return ok(meter.as_object())

    def _set_status(self, status: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            meter = self.meters.get(request.match_info["id"])
            if meter is None:
                return error(404, "invalid_request_error", "No such meter", "resource_missing")
            meter.status = status
            return ok(meter.as_object())

        return handler

    # -- event summaries and adjustments --------------------------------------------------

    async def _event_summaries(self, request: web.Request) -> web.Response:
        meter = self.meters.get(request.match_info["id"])
        if meter is None:
            return error(404, "invalid_request_error", "No such meter", "resource_missing")
        query = request.query
        try:
            customer = query["customer"]
            start, end = int(query["start_time"]), int(query["end_time"])
        except (KeyError, ValueError):
            return error(400, "invalid_request_error", "customer, start_time, end_time", None)
        if start % 60 or end % 60:  # Stripe: "must be aligned with minute boundaries"
            return error(
                400,
                "invalid_request_error",
                "Times must be aligned to minutes",
                None,
                param="start_time" if start % 60 else "end_time",
            )
        window = {"hour": 3600, "day": 86400}.get(
            query.get("value_grouping_window", ""), end - start
        )
        sums: dict[int, Decimal] = defaultdict(Decimal)
        for event in self.accepted.values():
            mine = event.meter_id == meter.id and event.customer == customer
            if mine and start <= event.timestamp < end:
                bucket = start + (event.timestamp - start) // window * window
                sums[bucket] += event.value if meter.formula == "sum" else 1
        data = [
            {
                "id": new_id("mtrusage"),
                "object": "billing.meter_event_summary",
                "aggregated_value": float(total),
                "start_time": bucket,
                "end_time": min(bucket + window, end),
                "meter": meter.id,
                "livemode": False,
            }
            for bucket, total in sorted(sums.items(), reverse=True)
        ]
        return ok({"object": "list", "url": request.path, "has_more": False, "data": data})

    async def _adjust(self, request: web.Request) -> web.Response:
        params = form(await request.post())
        identifier = str((params.get("cancel") or {}).get("identifier", ""))
        if params.get("type") != "cancel" or not identifier:
            return error(400, "invalid_request_error", "type=cancel and cancel[identifier]", None)
        self.cancelled.add(identifier)
        self.accepted.pop(identifier, None)
        return ok(
            {
                "id": new_id("mtradj"),
                "object": "billing.meter_event_adjustment",
                "event_name": params.get("event_name"),
                "type": "cancel",
                "cancel": {"identifier": identifier},
                "status": "pending",
                "livemode": False,
            }
        )

    def summary(self) -> dict[str, Any]:
        return {
            "accepted": len(self.accepted),
            "rejected": dict(sorted(_count(self.rejected.values()).items())),
            "rejected_identifiers": sorted(self.rejected),
            "cancelled": sorted(self.cancelled),
        }


def _timestamp(raw: Any, now: float) -> int:
    """An event's time: Unix seconds (v1) or RFC 3339 (the v2 stream); now when absent."""
    if raw is None:
        return int(now)
    if isinstance(raw, int) or str(raw).isdigit():
        return int(raw)
    return calendar.timegm(time.strptime(str(raw)[:19], "%Y-%m-%dT%H:%M:%S"))


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for value in values:
        counts[value] += 1
    return counts

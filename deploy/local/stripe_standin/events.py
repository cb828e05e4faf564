"""Stripe's v2 thin events for meter errors, as the stand-in plays them.

Rejections collected over ``error_report_seconds`` become one event per meter (and account):
``v1.billing.meter.error_report_triggered``, or ``v1.billing.meter.no_meter_found`` for
event names with no meter. Each holds ``data.reason.error_types[]`` (``code``,
``error_count``, ``sample_errors[]`` with ``request.identifier``), naming at most
``error_sample_limit`` identifiers per code (-1: all). Events are listed newest first at
``GET /v2/core/events`` (filters ``types``, ``object_id``, ``created``; paged by
``next_page_url``), retrieved whole at ``GET /v2/core/events/{id}``, and pushed as thin
notifications to ``webhook_url``, signed as Stripe signs them: ``Stripe-Signature:
t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>``.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import hmac
import itertools
import json
import time
from collections import defaultdict
from typing import Any

import aiohttp
from aiohttp import web

from .config import Controls
from .wire import error, ok

ERROR_REPORT = "v1.billing.meter.error_report_triggered"
NO_METER = "v1.billing.meter.no_meter_found"
_MESSAGES = {
    "no_meter": "No active meter was found for the event name",
    "archived_meter": "The meter is inactive (archived)",
    "meter_event_customer_not_found": "The customer does not exist",
    "meter_event_no_customer_defined": "The payload names no customer",
    "meter_event_invalid_value": "The value is not a valid number",
    "timestamp_in_future": "The timestamp is more than 5 minutes in the future",
    "timestamp_too_far_in_past": "The timestamp is more than 35 days in the past",
}
_serial = itertools.count(1)


class ThinEvents:
    def __init__(self, controls: Controls) -> None:
        self._controls = controls
        self.reset()

    def reset(self) -> None:
        self.events: list[dict[str, Any]] = []  # oldest first
        self._pending: dict[tuple[str | None, str | None], list[tuple[str, str, str]]] = (
            defaultdict(list)
        )
        self._pages: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self.pushes: dict[str, int] = defaultdict(int)  # status -> count
        self._flushing: asyncio.TimerHandle | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v2/core/events", self._list),
            web.get("/v2/core/events/{id}", self._retrieve),
        ]

    def reject(
        self, meter_id: str | None, event_name: str, code: str, identifier: str, account: str | None
    ) -> None:
        """Queue one rejection for the next error report."""
        self._pending[(account, meter_id)].append((code, identifier, event_name))
        if self._flushing is None:
            delay = self._controls.config.error_report_seconds
            self._flushing = asyncio.get_running_loop().call_later(delay, self.flush)

    def flush(self) -> None:
        """Turn what was queued into events (one per account and meter), and push them."""
        self._flushing = None
        pending, self._pending = self._pending, defaultdict(list)
        for (account, meter_id), failures in pending.items():
            event = self._report(account, meter_id, failures)
            self.events.append(event)
            if self._controls.config.webhook_url:
                asyncio.get_running_loop().create_task(self._push(event))

    def _report(
        self, account: str | None, meter_id: str | None, failures: list[tuple[str, str, str]]
    ) -> dict[str, Any]:
        limit = self._controls.config.error_sample_limit
        by_code: dict[str, list[str]] = defaultdict(list)
        for code, identifier, _ in failures:
            by_code[code].append(identifier)
        now = self._controls.now()
        event: dict[str, Any] = {
            "id": f"evt_test_standin{next(_serial):012d}",
            "object": "v2.core.event",
            "type": ERROR_REPORT if meter_id else NO_METER,
            "created": rfc3339(now),
            "livemode": False,
            "context": account,
            "data": {
                "developer_message_summary": f"{len(failures)} meter events failed",
                "validation_start": rfc3339(now - self._controls.config.error_report_seconds),
                "validation_end": rfc3339(now),
                "reason": {
                    "error_count": len(failures),
                    "error_types": [
                        {
                            "code": code,
                            "error_count": len(ids),
                            "sample_errors": [
                                {"error_message": _MESSAGES[code], "request": {"identifier": i}}
                                for i in (ids if limit < 0 else ids[:limit])
                            ],
                        }
                        for code, ids in by_code.items()
                    ],
                },
            },
        }
        if meter_id:
            event["related_object"] = {
                "id": meter_id,
                "type": "billing.meter",
                "url": f"/v1/billing/meters/{meter_id}",
            }
        return event

    async def _push(self, event: dict[str, Any]) -> None:
        """POST the thin notification, signed; three tries (Stripe retries for days: the
        service's poller is what catches a notification that never arrived)."""
        config = self._controls.config
        thin = {k: v for k, v in event.items() if k != "data"}
        body = json.dumps(thin)
        for attempt in range(3):
            stamp = int(time.time())
            mac = hmac.new(
                config.webhook_secret.encode(), f"{stamp}.{body}".encode(), hashlib.sha256
            )
            headers = {
                "Content-Type": "application/json",
                "Stripe-Signature": f"t={stamp},v1={mac.hexdigest()}",
            }
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(config.webhook_url, data=body, headers=headers) as r,
                ):
                    self.pushes[str(r.status)] += 1
                    if r.status < 300:
                        return
            except aiohttp.ClientError:
                self.pushes["unreachable"] += 1
            await asyncio.sleep(0.5 * (attempt + 1))

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        page = query.get("page")
        if page is not None:
            if page not in self._pages:
                return error(400, "invalid_request_error", "Unknown page", None)
            matching, start = self._pages.pop(page)
        else:
            matching, start = self._matching(query, request.headers.get("Stripe-Context")), 0
        limit = min(int(query.get("limit", 20)), 100)
        data = matching[start : start + limit]
        next_url = None
        if start + limit < len(matching):
            token = f"page_{next(_serial)}"
            self._pages[token] = (matching, start + limit)
            next_url = f"/v2/core/events?page={token}"
        return ok({"data": data, "next_page_url": next_url, "previous_page_url": None})

    def _matching(self, query: Any, context: str | None) -> list[dict[str, Any]]:
        types = {v for k, v in query.items() if k == "types" or k.startswith("types[")}
        created = {
            op: v
            for k, v in query.items()
            for op in ("gt", "gte", "lt", "lte")
            if k in (f"created[{op}]", f"created.{op}")
        }
        compare = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
        }
        return [
            e
            for e in reversed(self.events)  # newest first, as Stripe lists them
            if (not types or e["type"] in types)
            and e.get("context") == context
            and query.get("object_id") in (None, (e.get("related_object") or {}).get("id"))
            and all(compare[op](_instant(e["created"]), _instant(v)) for op, v in created.items())
        ]

    async def _retrieve(self, request: web.Request) -> web.Response:
        event_id = request.match_info["id"]
        for event in self.events:
            if event["id"] == event_id:
                return ok(event)
        return error(404, "invalid_request_error", "No such event", "resource_missing")

    def summary(self) -> dict[str, Any]:
        return {"events": len(self.events), "pushes": dict(self.pushes)}


def _instant(text: str) -> float:
    """RFC 3339 (with optional fraction and Z) as Unix seconds."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds + (float(f"0.{fraction}") if fraction else 0.0)


def rfc3339(moment: float) -> str:
    """With milliseconds: events created in one second stay in order for a cursor."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment))
    return f"{whole}.{int(moment * 1000) % 1000:03d}Z"

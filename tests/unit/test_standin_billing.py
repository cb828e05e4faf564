"""The stand-in plays Stripe's meter verdicts as Stripe documents them: meters, events
accepted first and rejected later in thin events (listed newest first, pushed signed),
event summaries counting only accepted events, and cancel adjustments."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
import stripe
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.support.stack import load_local_script

standin_module = load_local_script("stripe_standin")
AUTH = {"Authorization": "Bearer sk_test_51StandInUnitTests"}
SECRET = "whsec_standin_unit"


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(standin_module.StripeStandIn().app())) as test_client:
        yield test_client


async def post(client: TestClient[Any, Any], path: str, data: dict[str, str]) -> Any:
    return await (await client.post(path, data=data, headers=AUTH)).json()


async def get(client: TestClient[Any, Any], path: str) -> Any:
    return await (await client.get(path, headers=AUTH)).json()


async def billing_world(client: TestClient[Any, Any]) -> tuple[str, str]:
    """A customer and an active meter `api_calls`; and an inactive meter `old_calls`."""
    customer = (await post(client, "/v1/customers", {"email": "a@example.com"}))["id"]
    meter = await post(client, "/v1/billing/meters", {"event_name": "api_calls"})
    old = await post(client, "/v1/billing/meters", {"event_name": "old_calls"})
    await post(client, f"/v1/billing/meters/{old['id']}/deactivate", {})
    return customer, meter["id"]


def event(name: str, customer: str, identifier: str, **extra: Any) -> dict[str, str]:
    return {
        "event_name": name,
        "identifier": identifier,
        "payload[stripe_customer_id]": customer,
        "payload[value]": "2",
        **extra,
    }


async def test_rejections_are_reported_later_as_listed_thin_events(
    client: TestClient[Any, Any],
) -> None:
    """Bad events are accepted, then reported per code with their identifiers; summaries
    count only the good one; the inactive meter's events fail `archived_meter`."""
    customer, meter = await billing_world(client)
    now = int(time.time())
    for body in (
        event("api_calls", customer, "good-1", timestamp=str(now - 120)),
        event("api_calls", "cus_nobody", "bad-customer"),
        event("old_calls", customer, "bad-meter"),
        event("no_such_meter", customer, "bad-name"),
        event("api_calls", customer, "bad-time", timestamp=str(now + 3600)),
    ):
        assert (await client.post("/v1/billing/meter_events", data=body, headers=AUTH)).ok
    await client.post("/_standin/flush_errors")
    listed = await get(client, "/v2/core/events?types[0]=v1.billing.meter.error_report_triggered")
    codes = {
        t["code"]: [s["request"]["identifier"] for s in t["sample_errors"]]
        for e in listed["data"]
        for t in e["data"]["reason"]["error_types"]
    }
    assert codes == {
        "meter_event_customer_not_found": ["bad-customer"],
        "archived_meter": ["bad-meter"],
        "timestamp_in_future": ["bad-time"],
    }
    no_meter = await get(client, "/v2/core/events?types[0]=v1.billing.meter.no_meter_found")
    assert [e.get("related_object") for e in no_meter["data"]] == [None]
    hour = now - now % 3600
    summaries = await get(
        client,
        f"/v1/billing/meters/{meter}/event_summaries?customer={customer}"
        f"&start_time={hour - 3600}&end_time={hour + 3600}&value_grouping_window=hour",
    )
    assert sum(s["aggregated_value"] for s in summaries["data"]) == 2
    unaligned = await client.get(
        f"/v1/billing/meters/{meter}/event_summaries?customer={customer}"
        f"&start_time={hour + 1}&end_time={hour + 3600}",
        headers=AUTH,
    )
    assert unaligned.status == 400


async def test_a_cancelled_event_stops_counting(client: TestClient[Any, Any]) -> None:
    """A cancel adjustment by identifier removes the event from the summaries."""
    customer, meter = await billing_world(client)
    await post(client, "/v1/billing/meter_events", event("api_calls", customer, "c-1"))
    adjustment = await post(
        client,
        "/v1/billing/meter_event_adjustments",
        {"event_name": "api_calls", "type": "cancel", "cancel[identifier]": "c-1"},
    )
    assert adjustment["object"] == "billing.meter_event_adjustment"
    now = int(time.time())
    summaries = await get(
        client,
        f"/v1/billing/meters/{meter}/event_summaries?customer={customer}"
        f"&start_time={now - now % 60 - 600}&end_time={now - now % 60 + 600}",
    )
    assert summaries["data"] == []


async def test_events_are_listed_newest_first_in_pages(client: TestClient[Any, Any]) -> None:
    """Three reports, a page size of 2: newest first, and next_page_url gives the rest."""
    customer, _ = await billing_world(client)
    for n in range(3):
        await post(client, "/v1/billing/meter_events", event("api_calls", "cus_x", f"x-{n}"))
        await client.post("/_standin/flush_errors")
    first = await get(client, "/v2/core/events?limit=2")
    rest = await get(client, first["next_page_url"])
    created = [e["created"] for e in first["data"] + rest["data"]]
    assert len(created) == 3
    assert created == sorted(created, reverse=True)
    assert rest["next_page_url"] is None
    assert customer


async def test_reports_are_pushed_signed_to_the_webhook(client: TestClient[Any, Any]) -> None:
    """The thin notification (no `data`) arrives with a Stripe-Signature that
    stripe-python's own verifier accepts with the secret."""
    received: list[tuple[bytes, str]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers["Stripe-Signature"]))
        return web.Response()

    app = web.Application()
    app.add_routes([web.post("/hook", hook)])
    async with TestServer(app) as hook_server:
        await client.post(
            "/_standin/config",
            json={"webhook_url": str(hook_server.make_url("/hook")), "webhook_secret": SECRET},
        )
        customer, _ = await billing_world(client)
        await post(client, "/v1/billing/meter_events", event("api_calls", "cus_x", "pushed"))
        await client.post("/_standin/flush_errors")
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.05)
    body, signature = received[0]
    assert stripe.WebhookSignature.verify_header(body, signature, SECRET, tolerance=300)
    thin = json.loads(body)
    assert thin["type"] == "v1.billing.meter.error_report_triggered"
    assert "data" not in thin
    assert customer

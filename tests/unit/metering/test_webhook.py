"""POST /stripe/webhook: only a report signed with the integration's secret is processed;
everything else is refused with 400 and counted, or (other event types) ignored."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
import stripe
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from consumer.kafka.records import OutboundRecord
from consumer.metering.ledgers.memory import MemoryIdentifierLedger
from consumer.metering.verdicts.book import MemoryVerdictBook, ReportClaim
from consumer.metering.verdicts.intake import ErrorIntake, StripeReader
from consumer.metering.verdicts.webhook import webhook_routes
from consumer.observability.metrics import ServiceMetrics
from consumer.settings.secret import Secret

SECRET = "whsec_unit_webhook"
THIN = {
    "id": "evt_1",
    "object": "v2.core.event",
    "type": "v1.billing.meter.error_report_triggered",
    "created": "2026-12-04T10:00:00.000Z",
    "related_object": {"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_1"},
}
FULL = {
    **THIN,
    "data": {
        "reason": {
            "error_types": [
                {
                    "code": "no_meter",
                    "error_count": 1,
                    "sample_errors": [{"error_message": "m", "request": {"identifier": "u1"}}],
                }
            ]
        }
    },
}


class FakeReader(StripeReader):
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.contexts: list[str | None] = []

    async def get(
        self,
        integration: str,
        path: str,
        params: dict[str, object],
        *,
        context: str | None = None,
    ) -> bytes:
        self.paths.append(path)
        self.contexts.append(context)
        if path.startswith("/v1/billing/meters/"):
            return b'{"id": "mtr_1", "event_name": "api_calls"}'
        return json.dumps(FULL).encode()


class World:
    def __init__(self) -> None:
        self.published: list[OutboundRecord] = []
        self.registry = CollectorRegistry()
        self.metrics = ServiceMetrics(self.registry)
        self.reader = FakeReader()

        async def publish(record: OutboundRecord) -> None:
            self.published.append(record)

        self.book = MemoryVerdictBook(window_seconds=60, max_entries=10)
        self.intake = ErrorIntake(
            self.reader,
            publish,
            self.book,
            MemoryIdentifierLedger(window_seconds=60, lease_seconds=5, max_entries=10, owner="t"),
            self.metrics,
            topic="errors",
        )

    def refused(self, reason: str) -> float:
        value = self.registry.get_sample_value(
            "stripe_consumer_meter_webhook_refused_total", {"reason": reason}
        )
        return value or 0.0


@pytest_asyncio.fixture
async def world() -> AsyncIterator[tuple[World, TestClient[Any, Any]]]:
    w = World()
    app = web.Application()
    app.add_routes(webhook_routes(w.intake, {"default": Secret(SECRET)}, w.metrics))
    async with TestClient(TestServer(app)) as client:
        yield w, client


def signature(body: str, at: int | None = None) -> str:
    header: str = stripe.WebhookSignature.generate_signature_header(body, SECRET, at)
    return header


async def test_a_signed_report_is_processed_once(
    world: tuple[World, TestClient[Any, Any]],
) -> None:
    """Signed: 200, its record published; delivered again: 200, nothing more."""
    w, client = world
    body = json.dumps(THIN)
    for _ in range(2):
        response = await client.post(
            "/stripe/webhook", data=body, headers={"Stripe-Signature": signature(body)}
        )
        assert response.status == 200
    assert [r.key for r in w.published] == [b"u1"]
    assert json.loads(w.published[0].value)["event_name"] == "api_calls"


async def test_a_report_being_processed_elsewhere_is_asked_again(
    world: tuple[World, TestClient[Any, Any]],
) -> None:
    """Another replica holds the report (processing it): 500, so Stripe delivers it again,
    not 200 for a report that may yet fail there; once that replica let go, it is processed."""
    w, client = world
    body = json.dumps(THIN)
    assert await w.book.claim_report("evt_1") is ReportClaim.TAKEN  # the other replica
    response = await client.post(
        "/stripe/webhook", data=body, headers={"Stripe-Signature": signature(body)}
    )
    assert response.status == 500
    assert w.published == []
    await w.book.release_report("evt_1")  # it failed there
    response = await client.post(
        "/stripe/webhook", data=body, headers={"Stripe-Signature": signature(body)}
    )
    assert response.status == 200
    assert [r.key for r in w.published] == [b"u1"]


async def test_a_connected_accounts_report_is_fetched_in_its_context(
    world: tuple[World, TestClient[Any, Any]],
) -> None:
    """The thin event's `context` (a connected account) is sent when fetching the event, as
    stripe-python's fetch_event does."""
    w, client = world
    body = json.dumps({**THIN, "context": "acct_123"})
    response = await client.post(
        "/stripe/webhook", data=body, headers={"Stripe-Signature": signature(body)}
    )
    assert response.status == 200
    assert w.reader.contexts[0] == "acct_123"


async def test_unknown_integration_malformed_and_other_types(
    world: tuple[World, TestClient[Any, Any]],
) -> None:
    """No secret for the integration: 400; signed but not an event: 400 `malformed`; another
    event type: 200 and ignored; an old timestamp: 400 `stale`. Nothing processed."""
    w, client = world
    body = json.dumps(THIN)
    other = json.dumps({**THIN, "type": "v1.billing.meter.created"})
    answers = [
        await client.post(
            "/stripe/webhook/billing", data=body, headers={"Stripe-Signature": signature(body)}
        ),
        await client.post(
            "/stripe/webhook", data="[1]", headers={"Stripe-Signature": signature("[1]")}
        ),
        await client.post(
            "/stripe/webhook", data=other, headers={"Stripe-Signature": signature(other)}
        ),
        await client.post(
            "/stripe/webhook",
            data=body,
            headers={"Stripe-Signature": signature(body, int(time.time()) - 301)},
        ),
    ]
    assert [a.status for a in answers] == [400, 400, 200, 400]
    assert [w.refused(r) for r in ("unknown_integration", "malformed", "stale")] == [1, 1, 1]
    assert w.published == []
    assert w.reader.paths == []

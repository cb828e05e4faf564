"""The v2 meter event stream through the real SDK and the gateway, against the stand-in's
session and stream endpoints: what Stripe receives, and how an expired session reads."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from consumer.contract.errors import StripeFailure
from consumer.metering.sessions import ExecutorSessionCreator
from consumer.observability.metrics import ServiceMetrics
from consumer.observability.redaction import Redactor
from consumer.settings import Settings
from consumer.stripe.executor import stripe_executor
from consumer.stripe.gateway import StripeGateway, open_gateway
from tests.contract.conftest import gateway_settings
from tests.support.stack import StandIn, standin_request

pytestmark = pytest.mark.contract

EVENTS: list[dict[str, object]] = [
    {
        "event_name": "api_requests",
        "identifier": f"contract-stream-{i}",
        "payload": {"stripe_customer_id": "cus_Contract1", "value": str(i + 1)},
        "timestamp": "2026-12-01T10:00:00Z",
    }
    for i in range(3)
]


@pytest_asyncio.fixture
async def stream_gateway(standin: StandIn) -> AsyncIterator[tuple[StripeGateway, Settings]]:
    settings = gateway_settings(standin.url, STRIPE_METER_EVENTS_BASE=standin.url)
    async with open_gateway(settings, Redactor(["sk_test_123"])) as gateway:
        yield gateway, settings


async def new_session(gateway: StripeGateway, settings: Settings) -> tuple[str, float]:
    """A session created as the service does: an ordinary call through the executor."""
    executor = stripe_executor(settings, gateway, ServiceMetrics(CollectorRegistry()))
    return await ExecutorSessionCreator(executor).create_meter_event_session(
        credential=settings.credentials["default"], stripe_account=None
    )


async def test_stream_batch_arrives_as_the_json_events_given(
    standin: StandIn, stream_gateway: tuple[StripeGateway, Settings]
) -> None:
    """A batch reaches the stream endpoint as a JSON body holding exactly the events given."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    gateway, settings = stream_gateway
    token, expires_at = await new_session(gateway, settings)
    assert token.startswith("mes_")
    assert expires_at > time.time() + 800  # Stripe's sessions last 15 minutes
    await gateway.send_meter_event_stream(token=token, events=list(EVENTS))
    stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    assert stats["meter_stream_requests"] == 1
    assert stats["recent_stream_events"] == EVENTS


async def test_expired_session_is_a_retryable_session_failure(
    standin: StandIn, stream_gateway: tuple[StripeGateway, Settings]
) -> None:
    """An expired token reads as `temporary_session_expired`, retryable, and nothing counts."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    await standin_request(standin.url, "POST", "/_standin/config", {"session_ttl_seconds": 0})
    gateway, settings = stream_gateway
    token, _ = await new_session(gateway, settings)
    try:
        with pytest.raises(StripeFailure) as caught:
            await gateway.send_meter_event_stream(token=token, events=list(EVENTS))
        stats = await standin_request(standin.url, "GET", "/_standin/stats")
    finally:
        await standin_request(standin.url, "POST", "/_standin/reset")
    assert caught.value.category == "temporary_session_expired"
    assert caught.value.retryable is True
    assert stats["meter_events_delivered"] == 0

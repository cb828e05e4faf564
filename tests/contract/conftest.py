"""Contract tier: the real stripe SDK, through the service's gateway, against stripe-mock
(Stripe's own spec) and against the project's stand-in (errors stripe-mock cannot produce)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from consumer.observability.redaction import Redactor
from consumer.settings import Settings, load_settings
from consumer.stripe.gateway import StripeGateway, open_gateway
from tests.support.stack import StandIn

pytestmark = pytest.mark.contract


def gateway_settings(api_base: str, **overrides: str) -> Settings:
    return load_settings(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "STRIPE_API_KEY": "sk_test_123",
            "STRIPE_API_BASE": api_base,
            "STRIPE_TIMEOUT_SECONDS": "2",
            **overrides,
        }
    )


@pytest_asyncio.fixture
async def mock_gateway(stack: dict[str, str]) -> AsyncIterator[tuple[StripeGateway, Settings]]:
    settings = gateway_settings(stack["STRIPE_API_BASE"])
    async with open_gateway(settings, Redactor()) as gateway:
        yield gateway, settings


@pytest_asyncio.fixture
async def standin_gateway(standin: StandIn) -> AsyncIterator[tuple[StripeGateway, Settings]]:
    settings = gateway_settings(standin.url)
    async with open_gateway(settings, Redactor(["sk_test_123"])) as gateway:
        yield gateway, settings

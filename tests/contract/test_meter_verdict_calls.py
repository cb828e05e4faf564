"""The verdict path's reads pass Stripe's own spec (stripe-mock): the active meters list and
the event summaries reconciliation asks for, with their parameters as the SDK encodes them."""

from __future__ import annotations

import time

import pytest

from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.reconcile import Reconciler
from consumer.metering.usage import MemoryUsageBook
from consumer.metering.verdicts.catalog import Meter, MeterCatalog
from consumer.metering.verdicts.intake import StripeReader
from consumer.settings import Settings
from consumer.stripe.gateway import StripeGateway

pytestmark = pytest.mark.contract


async def test_the_active_meters_read_passes_the_spec(
    mock_gateway: tuple[StripeGateway, Settings],
) -> None:
    """`GET /v1/billing/meters?status=active&limit=100`: accepted, and read into the catalog."""
    gateway, settings = mock_gateway
    catalog = MeterCatalog()
    await catalog.refresh(StripeReader(gateway, settings), "default")
    assert catalog.active is not None
    assert all(m.status == "active" for m in catalog.active.values())


async def test_the_event_summaries_reconcile_asks_for_pass_the_spec(
    mock_gateway: tuple[StripeGateway, Settings],
) -> None:
    """`GET /v1/billing/meters/{id}/event_summaries` with customer, hour-aligned start and
    end, `value_grouping_window=hour` and `limit`: accepted, each summary read."""
    gateway, settings = mock_gateway
    reconciler = Reconciler(
        StripeReader(gateway, settings), MemoryUsageBook(), LedgerScope("default", None)
    )
    hour = int(time.time()) // 3600 * 3600
    meter = Meter(id="mtr_123", event_name="api_calls")
    counted = await reconciler.counted(meter, "cus_123", [hour - 3600, hour])
    assert counted
    assert all(isinstance(value, float) for value in counted.values())

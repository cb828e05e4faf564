"""Known customers (CONSUMER_METER_KNOWN_CUSTOMERS_SECONDS), through the real broker, Redis
and the stand-in: an event for a customer Stripe does not have is refused before sending,
the others are sent, and each id is looked up once, shared by restarts through Redis."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_meter_verdicts import (
    World,
    _committed,
    batch,
    judged,
    publish,
    wait_for,
    world,  # noqa: F401  (the fixture)
)
from tests.support.service import running_service
from tests.support.stack import standin_request

pytestmark = pytest.mark.integration
CUSTOMER_GETS = "/v1/customers/{cus_id}"


async def _stats(of: World) -> dict[str, Any]:
    stats: dict[str, Any] = await standin_request(of.standin.url, "GET", "/_standin/stats?full=1")
    return stats


async def test_an_unknown_customer_is_refused_before_sending(world: World) -> None:  # noqa: F811
    """3 of 63 events name customers the stand-in never made: those 3 are on
    stripe.meter-errors (validation_error, $.customer_id), `rejected` in the ledger and never
    sent; the 60 others are sent once and counted. One GET per distinct customer; after a
    restart the known ids come from Redis (no GET)."""
    events = batch(world, 63, unknown=3, inactive=0, bad_time=0)
    settings = world.settings(
        CONSUMER_METER_KNOWN_CUSTOMERS_SECONDS="3600", CONSUMER_METER_ERRORS_POLL_SECONDS="0"
    )
    async with running_service(settings):
        await publish(world, events.events)
        records = await world.error_records(3)
        await wait_for(lambda: _committed(world), 60, "every meter event committed")
    assert sorted(r["identifier"] for r in records) == sorted(events.unknown_customer)
    assert {r["code"] for r in records} == {"validation_error"}
    assert all(r["message"].startswith("$.customer_id: No such customer") for r in records)
    assert await world.states(events.unknown_customer) == ["rejected:validation_error"] * 3
    stats = await _stats(world)
    sent = stats["meter_deliveries"]
    assert not [i for i in events.unknown_customer if i in sent]
    good = [e["identifier"] for e in events.events[3:]]
    assert all(sent.get(i) == 1 for i in good)
    assert stats["calls_by_path"][CUSTOMER_GETS] == 20 + 3  # the known 20, the 3 unknown

    # A restart (a new process: an empty local cache): the 20 known ids come from Redis.
    again = batch(world, 40, unknown=0, inactive=0, bad_time=0)
    async with running_service(settings):
        await publish(world, again.events)
        await wait_for(lambda: _committed(world), 60, "the second batch committed")
    stats = await _stats(world)
    assert all(stats["meter_deliveries"].get(e["identifier"]) == 1 for e in again.events)
    assert stats["calls_by_path"][CUSTOMER_GETS] == 23  # none more: shared through Redis
    await judged(world, 60 + 40)
    billing = await world.billing()
    assert billing["accepted"] == 100  # every sent event counted: none for a missing customer
    assert billing["rejected"].get("meter_event_customer_not_found", 0) == 0

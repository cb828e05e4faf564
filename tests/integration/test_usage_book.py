"""The reconciliation sums in real Redis, a single one and a three-primary cluster: what was
delivered adds up per (event name, customer, hour), and a rejection moves its value over."""

from __future__ import annotations

import pytest

from consumer.metering.events import MeterEvent
from consumer.metering.usage import RedisUsageBook, hour_of
from tests.integration.test_ledger_layout import SCOPE, Connect, connect, redis_url
from tests.unit.fakes import settings

pytestmark = pytest.mark.integration
__all__ = ["connect", "redis_url"]  # fixtures, used by name
HOUR = 1_764_892_800  # a whole hour (UTC)


def event(identifier: str, customer: str, value: int) -> MeterEvent:
    credential = settings().credentials["default"]
    payload = {"stripe_customer_id": customer, "value": str(value)}
    return MeterEvent(SCOPE, credential, "api_requests", identifier, payload, HOUR + 60, "k")


async def test_delivered_and_rejected_sums_add_up(connect: Connect) -> None:
    """60 events over two customers (their keys across the cluster's slots) sum per
    customer; a rejected one's value and count go to its code (delivered keeps it)."""
    book = RedisUsageBook(connect())
    events = [event(f"u-{i}", f"cus_{i % 2}", 1 + i % 3) for i in range(60)]
    assert hour_of(events[0], 0) == HOUR
    await book.delivered(SCOPE, events[:30])
    await book.delivered(SCOPE, events[30:])
    await book.rejected(SCOPE, [("u-1", "customer_not_found")])
    delivered, rejected = await book.sums(SCOPE, HOUR)
    expected = {c: sum(1 + i % 3 for i in range(60) if i % 2 == c) for c in (0, 1)}
    assert delivered == {
        ("api_requests", "cus_0"): expected[0],
        ("api_requests", "cus_1"): expected[1],
    }
    assert rejected == {
        ("api_requests", "cus_1", "customer_not_found"): 2,
        ("api_requests", "cus_1", "customer_not_found", "n"): 1,
    }

"""Two replicas of the group keep one Stripe rate limit between them (through Redis), as
Stripe counts it: calls per second at the stand-in."""

from __future__ import annotations

from tests.fault.conftest import Harness
from tests.support.process import ServiceProcess


def stripe_calls(service: ServiceProcess) -> float:
    return service.metric(
        "stripe_consumer_stripe_requests_total", {"operation": "get_balance", "outcome": "ok"}
    )


async def test_two_replicas_never_exceed_the_shared_limit_in_any_second(harness: Harness) -> None:
    """STRIPE_RATE_LIMIT=20 with two replicas busy at once: Stripe never sees more than 20
    calls in one second (each replica keeping 20 on its own made 42), and both worked."""
    limit = {"STRIPE_RATE_LIMIT": "20", "CONSUMER_REPLICAS": "2"}
    first = harness.service(**limit).start()
    second = harness.service(**limit).start()
    keys = {f"balance-{i:03d}" for i in range(200)}
    for key in sorted(keys):
        await harness.client.publish({"operation": "get_balance"}, key=key)
    replies = await harness.client.replies(len(keys), keys=keys, timeout_s=90)
    assert {reply["status"] for reply in replies.values()} == {"COMPLETED"}
    per_second = (await harness.stats(full=True))["calls_per_second"]
    assert sum(per_second.values()) == len(keys)
    fallbacks = [
        service.metric("stripe_consumer_redis_errors_total", {"use": "rate_limit"})
        for service in (first, second)
    ]
    assert max(per_second.values()) <= 20, (per_second, "Redis errors (fallbacks):", fallbacks)
    assert stripe_calls(first) > 0
    assert stripe_calls(second) > 0

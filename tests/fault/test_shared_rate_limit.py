"""Two replicas of the group keep one Stripe rate limit between them (through Redis), as
Stripe counts it: calls per second at the stand-in."""

from __future__ import annotations

from tests.fault.conftest import Harness
from tests.support.process import ServiceProcess
from tests.support.stack import standin_request


def stripe_calls(service: ServiceProcess) -> float:
    return service.metric(
        "stripe_consumer_stripe_requests_total", {"operation": "get_balance", "outcome": "ok"}
    )


async def test_two_replicas_never_exceed_the_shared_limit_in_any_second(harness: Harness) -> None:
    """STRIPE_RATE_LIMIT=20 with two warmed-up replicas busy at once: Stripe never sees more
    than 20 calls in one second (each replica keeping 20 on its own made 39), and both
    worked."""
    limit = {"STRIPE_RATE_LIMIT": "20", "CONSUMER_REPLICAS": "2"}
    first = harness.service(**limit).start()
    second = harness.service(**limit).start()
    # Warm up: both replicas in the group with their partitions and their connections to
    # Stripe and Redis open (a freshly started process, its loop congested, can hold an
    # admitted call long enough to bunch at Stripe; see the README's rate-limit section).
    warm_up = {f"warm-{i:02d}" for i in range(30)}
    for key in sorted(warm_up):
        await harness.client.publish({"operation": "get_balance"}, key=key)
    await harness.client.replies(len(warm_up), keys=warm_up, timeout_s=60)
    warmed = [stripe_calls(first), stripe_calls(second)]
    assert min(warmed) > 0
    await standin_request(harness.standin.url, "POST", "/_standin/reset")
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
    assert stripe_calls(first) > warmed[0]  # both replicas called Stripe in the measured run
    assert stripe_calls(second) > warmed[1]

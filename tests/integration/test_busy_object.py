"""One busy Stripe object never stalls the rest, through the real broker: writes to one
customer go one at a time (Stripe's advice against lock_timeout), and while they wait their
turn they hold no worker slot, so requests for everyone else are answered at once."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import StandIn, standin_request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
HOT = 120  # writes to one customer, one at a time: at least HOT x latency
OTHERS = 40
LATENCY_MS = 40


async def test_others_are_answered_before_half_the_busy_customers_writes_are_done(
    stack: dict[str, str], standin: StandIn
) -> None:
    """120 updates of one customer published first, then 40 requests for other customers,
    with 8 worker slots: every other request is answered before the 60th update (the hot
    object's queue half done), and every update is answered COMPLETED."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    await standin_request(standin.url, "POST", "/_standin/config", {"latency_ms": LATENCY_MS})
    topics = Topics()
    run = uuid.uuid4().hex[:8]
    hot = {f"hot-{run}-{i}": _update("cus_Hot" + run, i) for i in range(HOT)}
    others = {f"other-{run}-{i}": _update(f"cus_Other{run}{i}", i) for i in range(OTHERS)}
    settings = service_settings(
        {**stack, "STRIPE_API_BASE": standin.url}, topics, CONSUMER_MAX_IN_FLIGHT="8"
    )
    try:
        async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client:
            for key, value in {**hot, **others}.items():  # all waiting before the service starts
                await client.publish({**value, "taskId": key}, key=key)
            async with running_service(settings):
                replies = await client.read(
                    topics.replies, HOT + OTHERS, keys=set(hot) | set(others), timeout_s=120
                )
    finally:
        await standin_request(standin.url, "POST", "/_standin/config", {})
    answered = {
        r.key.decode(): (r.timestamp_ms, msgspec.json.decode(r.value or b"null"))
        for r in replies
        if r.key is not None
    }
    assert {answered[key][1]["status"] for key in answered} == {"COMPLETED"}
    hot_times = sorted(answered[key][0] for key in hot)
    last_other = max(answered[key][0] for key in others)
    hot_before = sum(1 for t in hot_times if t <= last_other)
    assert hot_before < HOT // 2, f"{hot_before} of {HOT} hot writes were done first"


def _update(customer_id: str, i: int) -> dict[str, Any]:
    return {
        "operation": "update_customer",
        "customer_id": customer_id,
        "metadata": {"n": str(i)},
        "workflowInstanceId": f"wf-{customer_id}-{i}",
        "taskRefName": "update",
    }

"""Past Stripe's 24-hour idempotency window only the service's own memory stands between a
redelivered request and a second charge: the stand-in's clock moved a day on shows both
sides."""

from __future__ import annotations

import uuid

import pytest

from consumer.contract.examples import conductor_event_payload
from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import StandIn, standin_request

pytestmark = pytest.mark.integration
A_DAY_AND_AN_HOUR = 25 * 3600


@pytest.mark.parametrize(("shared_memory", "executions"), [(True, 1), (False, 2)])
async def test_a_copy_a_day_later_is_charged_again_unless_the_memory_still_holds_it(
    stack: dict[str, str], standin: StandIn, shared_memory: bool, executions: int
) -> None:
    """A charge is answered; a day and an hour pass at Stripe (its key pruned) and the
    service restarts. A copy is answered from the reply memory in Redis (its window set to
    two days); with the memory in the process only (gone with the restart) the copy reaches
    Stripe, which no longer knows the key and charges again."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    topics = Topics()
    task_id = str(uuid.uuid4())
    request = conductor_event_payload(
        "create_charge",
        {"amount": 4200, "currency": "usd", "source": "tok_visa"},
        task_id=task_id,
        task_ref_name="charge_card",
    )
    redis = {"CONSUMER_REDIS_URL": stack["REDIS_URL"]} if shared_memory else {}
    settings = service_settings(
        {**stack, "STRIPE_API_BASE": standin.url},
        topics,
        CONSUMER_REDIS_KEY_PREFIX=f"{topics.prefix}:",
        CONSUMER_REPLY_MEMORY_SECONDS="172800",
        **redis,
    )
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client:
        async with running_service(settings):
            await client.publish(request, key=task_id)
            await client.replies(1, keys={task_id})
        config = {"clock_offset_seconds": A_DAY_AND_AN_HOUR}
        await standin_request(standin.url, "POST", "/_standin/config", config)
        async with running_service(settings):
            await client.publish(request, key=task_id)
            records = await client.read(topics.replies, 1, keys={task_id}, per_key=2)
    stats = await standin_request(standin.url, "GET", "/_standin/stats")
    assert len(records) == 2
    assert stats["executions_total"] == executions

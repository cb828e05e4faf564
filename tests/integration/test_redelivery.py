"""Redelivery and republishing are safe: the same logical request reaches Stripe's
side-effect layer once, and committed records are not processed again after a restart."""

from __future__ import annotations

import json

import pytest

from tests.support.charges import answered_charge
from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import StandIn, standin_request

pytestmark = pytest.mark.integration


async def test_republished_request_is_answered_without_a_second_side_effect(
    stack: dict[str, str], standin: StandIn
) -> None:
    """Conductor publishes a pending task's record again (same key): the second reply comes
    from memory, marked deduplicated; Stripe executed the charge once."""
    async with answered_charge(stack, standin, amount=4200) as charge:
        first = charge.reply
        await charge.client.publish(charge.request, key=charge.task_id)
        await charge.client.publish(charge.request, key=charge.task_id)
        records = await charge.client.read(charge.topics.replies, 3)  # the test's own topic
    replies = [r.value for r in records]
    assert len(replies) == 3
    assert first["status"] == "COMPLETED"
    assert first["deduplicated"] is False
    later = [json.loads(r or b"{}") for r in replies[1:]]
    assert [r["deduplicated"] for r in later] == [True, True]
    assert {r["output"]["id"] for r in later} == {first["output"]["id"]}
    stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    assert stats["executions"] == {first["idempotency_key"]: 1}


async def test_restart_does_not_process_committed_records_again(stack: dict[str, str]) -> None:
    """A graceful stop commits; the next process of the group starts after what was answered."""
    topics = Topics()
    settings = service_settings(stack, topics)
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client:
        first_keys = {f"first-{i}" for i in range(5)}
        for key in sorted(first_keys):
            await client.publish({"operation": "get_balance"}, key=key)
        async with running_service(settings):
            await client.replies(5, keys=first_keys)
        second_keys = {f"second-{i}" for i in range(3)}
        for key in sorted(second_keys):
            await client.publish({"operation": "get_balance"}, key=key)
        async with running_service(settings) as again:
            await client.replies(3, keys=second_keys)
            consumed = again.registry.get_sample_value(
                "stripe_consumer_records_consumed_total", {"topic": topics.requests}
            )
        all_replies = await client.read(topics.replies, 8)
    assert consumed == 3
    assert len(all_replies) == 8


async def test_reply_goes_to_an_allowed_custom_topic(stack: dict[str, str]) -> None:
    """`reply_topic` within the allow-list receives the reply instead of the default topic."""
    topics = Topics()
    custom = f"{topics.replies}.billing"
    async with (
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client,
        running_service(service_settings(stack, topics)),
    ):
        await client.publish(
            {"operation": "get_balance", "reply_topic": custom, "taskId": "t-custom"},
            key="t-custom",
        )
        [record] = await client.read(custom, 1)
    assert record.key == b"t-custom"
    assert b'"status":"COMPLETED"' in (record.value or b"")

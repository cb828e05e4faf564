"""Copies of a task answered FAILED are answered FAILED again and never run, through the real
broker: Conductor republishes a pending task until it reads the reply, and the workflow has
already taken its failure branch. A Conductor retry (a new taskId) runs."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from consumer.contract.examples import conductor_event_payload
from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import StandIn, standin_request

pytestmark = pytest.mark.integration
RATE_LIMITED = {"faults": [{"status": 429, "times": -1, "path_prefix": "/v1/charges"}]}


def charge(task_id: str, workflow: str) -> dict[str, Any]:
    payload = conductor_event_payload(
        "create_charge",
        {"amount": 4200, "currency": "usd", "source": "tok_visa"},
        task_id=task_id,
        task_ref_name="charge_card",
    )
    return {**payload, "workflowInstanceId": workflow}


async def replies_of(client: KafkaClient, key: str, count: int) -> list[dict[str, Any]]:
    records = await client.read(client.topics.replies, 1, keys={key}, per_key=count)
    return [msgspec.json.decode(r.value) for r in records if r.value]


async def test_copies_of_a_failed_task_are_answered_failed_and_never_run(
    stack: dict[str, str], standin: StandIn
) -> None:
    """Five copies of a task whose charge FAILED (429s outlived the retry budget): five
    FAILED replies and no charge, even once Stripe accepts again. The task's Conductor retry
    charges once; a late copy of the failed task is still FAILED."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    await standin_request(standin.url, "POST", "/_standin/config", RATE_LIMITED)
    topics = Topics()
    task_id, workflow = str(uuid.uuid4()), str(uuid.uuid4())
    settings = service_settings(
        {**stack, "STRIPE_API_BASE": standin.url}, topics, CONSUMER_RETRY_BUDGET_SECONDS="1"
    )
    async with (
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client,
        running_service(settings),
    ):
        await client.publish(charge(task_id, workflow), key=task_id)
        [failed] = await replies_of(client, task_id, 1)
        await standin_request(standin.url, "POST", "/_standin/config", {})  # Stripe is back
        for _ in range(4):
            await client.publish(charge(task_id, workflow), key=task_id)
        copies = await replies_of(client, task_id, 5)
        retry_id = str(uuid.uuid4())
        await client.publish(charge(retry_id, workflow), key=retry_id)
        [retried] = await replies_of(client, retry_id, 1)
        await client.publish(charge(task_id, workflow), key=task_id)
        late = (await replies_of(client, task_id, 6))[-1]
    assert failed["status"] == "FAILED"
    assert [(c["status"], c["deduplicated"]) for c in copies[1:]] == [("FAILED", True)] * 4
    assert (late["status"], late["deduplicated"]) == ("FAILED", True)
    assert (retried["status"], retried["idempotency_key"]) == (
        "COMPLETED",
        failed["idempotency_key"],
    )
    stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    assert stats["executions"] == {failed["idempotency_key"]: 1}  # the retry's charge only


async def test_a_restarted_service_remembers_the_failure_through_redis(
    stack: dict[str, str], standin: StandIn
) -> None:
    """The failure memory is in Redis: after a restart (or on another replica) a copy of the
    failed task is still answered FAILED, without a charge."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    await standin_request(standin.url, "POST", "/_standin/config", RATE_LIMITED)
    topics = Topics()
    task_id, workflow = str(uuid.uuid4()), str(uuid.uuid4())
    settings = service_settings(
        {**stack, "STRIPE_API_BASE": standin.url},
        topics,
        CONSUMER_RETRY_BUDGET_SECONDS="1",
        CONSUMER_REDIS_URL=stack["REDIS_URL"],
        CONSUMER_REDIS_KEY_PREFIX=f"{topics.prefix}:",
    )
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client:
        async with running_service(settings):
            await client.publish(charge(task_id, workflow), key=task_id)
            [failed] = await replies_of(client, task_id, 1)
        await standin_request(standin.url, "POST", "/_standin/config", {})
        async with running_service(settings):
            await client.publish(charge(task_id, workflow), key=task_id)
            copy = (await replies_of(client, task_id, 2))[-1]
    assert failed["status"] == "FAILED"
    assert (copy["status"], copy["deduplicated"], copy["error"]) == (
        "FAILED",
        True,
        failed["error"],
    )
    stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    assert stats["executions"] == {}


async def test_a_copy_of_a_request_held_too_long_is_answered_failed_once_the_key_works(
    stack: dict[str, str], standin: StandIn
) -> None:
    """A request held past the hold for a rejected key is answered FAILED; a copy of it
    (Conductor republishing the pending task) published after the key works again is
    answered FAILED from memory and charges nothing."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    await standin_request(
        standin.url, "POST", "/_standin/config", {"revoked_keys": ["sk_test_123"]}
    )
    topics = Topics()
    task_id, workflow = str(uuid.uuid4()), str(uuid.uuid4())
    settings = service_settings(
        {**stack, "STRIPE_API_BASE": standin.url},
        topics,
        CONSUMER_CREDENTIAL_HOLD_SECONDS="1",
        CONSUMER_CREDENTIAL_PROBE_SECONDS="0.2",
    )
    async with (
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client,
        running_service(settings),
    ):
        await client.publish(charge(task_id, workflow), key=task_id)
        [failed] = await replies_of(client, task_id, 1)
        await standin_request(standin.url, "POST", "/_standin/config", {})  # the key works
        other = str(uuid.uuid4())
        await client.publish(charge(other, str(uuid.uuid4())), key=other)
        [done] = await replies_of(client, other, 1)  # the gate is open again
        await client.publish(charge(task_id, workflow), key=task_id)
        copy = (await replies_of(client, task_id, 2))[-1]
    assert (failed["status"], failed["error"]["type"]) == ("FAILED", "authentication_error")
    assert done["status"] == "COMPLETED"
    assert (copy["status"], copy["deduplicated"], copy["error"]) == (
        "FAILED",
        True,
        failed["error"],
    )
    stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    assert stats["executions"] == {done["idempotency_key"]: 1}  # the copy charged nothing


async def test_a_copy_of_a_failed_meter_event_on_the_meter_topic_is_answered_failed(
    stack: dict[str, str], standin: StandIn
) -> None:
    """A meter event on the meter topic with a taskId, refused by Stripe for good
    (FAILED_WITH_TERMINAL_ERROR): a copy published once Stripe accepts again is answered
    the same from memory, and the usage is never counted."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    refused = {"faults": [{"status": 400, "times": -1, "path_prefix": "/v"}]}
    await standin_request(standin.url, "POST", "/_standin/config", refused)
    topics = Topics()
    task_id = str(uuid.uuid4())
    event = {
        "operation": "create_meter_event",
        "event_name": "api_requests",
        "customer_id": "cus_1",
        "value": 3,
        "identifier": f"use-{task_id}",
        "taskId": task_id,
    }
    settings = service_settings({**stack, "STRIPE_API_BASE": standin.url}, topics)
    async with (
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client,
        running_service(settings),
    ):
        await client.publish(event, key=task_id, topic=topics.meter)
        [failed] = await replies_of(client, task_id, 1)
        await standin_request(standin.url, "POST", "/_standin/config", {})  # Stripe accepts
        await client.publish(event, key=task_id, topic=topics.meter)
        copy = (await replies_of(client, task_id, 2))[-1]
    assert failed["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert (copy["status"], copy["deduplicated"], copy["error"]) == (
        "FAILED_WITH_TERMINAL_ERROR",
        True,
        failed["error"],
    )
    stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    assert f"use-{task_id}" not in stats["meter_deliveries"]

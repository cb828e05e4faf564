"""Every operation end to end: a Conductor-shaped request record in, a reply record out,
through a real Kafka broker and Stripe's own mock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from consumer.contract.examples import EXPECTED_OBJECT, conductor_requests
from consumer.contract.requests import OPERATION_NAMES
from tests.support.service import KafkaClient, Topics, running_service, service_settings

pytestmark = pytest.mark.integration

WORKFLOW_ID = str(uuid.uuid4())
TASK_IDS, REQUESTS = conductor_requests(workflow_instance_id=WORKFLOW_ID)


@pytest_asyncio.fixture(scope="module")
async def replies(stack: dict[str, str]) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """Publish one request per operation (before the service starts: a new group reads from
    the earliest offset) and collect the 21 replies."""
    topics = Topics()
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client:
        for operation in OPERATION_NAMES:
            await client.publish(REQUESTS[operation], key=TASK_IDS[operation])
        async with running_service(service_settings(stack, topics)):
            yield await client.replies(len(OPERATION_NAMES), timeout_s=60)


@pytest.mark.parametrize("operation", OPERATION_NAMES)
def test_operation_round_trip(operation: str, replies: dict[str, dict[str, Any]]) -> None:
    """The reply is keyed by the task, COMPLETED, carries the Stripe object, echoes Conductor."""
    reply = replies[TASK_IDS[operation]]
    sent = REQUESTS[operation]
    assert reply["status"] == "COMPLETED", reply
    assert reply["operation"] == operation
    assert reply["output"]["object"] == EXPECTED_OBJECT[operation]
    for field in (
        "taskId",
        "taskRefName",
        "workflowInstanceId",
        "workflowType",
        "workflowVersion",
        "correlationId",
        "sink",
        "asyncComplete",
    ):
        assert reply[field] == sent[field], field
    assert reply["error"] is None
    assert reply["reasonForIncompletion"] is None
    assert reply["idempotency_key"] == reply["idempotency_key"].strip()
    assert reply["idempotency_key"].startswith(f"{WORKFLOW_ID}:{operation}_task:")
    assert reply["attempts"] == 1
    assert reply["deduplicated"] is False

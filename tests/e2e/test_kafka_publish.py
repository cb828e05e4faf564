"""The KAFKA_PUBLISH producer style through a real Conductor: KAFKA_PUBLISH writes the
request, the service answers on `<replies>.wait`, the shipped handler completes (or fails)
the WAIT task by workflowInstanceId + taskRefName, and the next task reads the result."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from consumer.conductor.kafka_publish import kafka_publish_workflow, wait_reply_topic
from consumer.kafka.admin import ensure_topics
from consumer.kafka.reader import read_to_end
from tests.e2e.conftest import Conductor

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def task(execution: dict[str, Any], task_type: str) -> dict[str, Any]:
    return next(t for t in execution["tasks"] if t["taskType"] == task_type)


async def test_kafka_publish_then_wait_completes_with_the_stripe_result(
    conductor: Conductor, stack: dict[str, str]
) -> None:
    """A good request completes WAIT with the customer and INLINE reads it; a bad email
    fails WAIT (and the workflow) with the reason naming `$.email`. The record Conductor
    wrote is the flat request, keyed `<workflowId>:<wait ref>`."""
    topics = conductor.main
    await ensure_topics(conductor.kafka.connection, {wait_reply_topic(topics.replies): 1})
    workflow = kafka_publish_workflow(topics.requests, topics.replies, "tests@example.com")
    workflow["name"] += f"_{topics.prefix}"
    # The conductor fixture registered the `.wait` handlers with the others, early.
    await asyncio.to_thread(conductor.client.upsert_workflows, [workflow])
    bootstrap = stack["KAFKA_BOOTSTRAP_SERVERS"]
    good = await conductor.start(
        workflow["name"],
        {"kafka_bootstrap_servers": bootstrap, "name": "Jenny Rosen", "email": "jenny@example.com"},
    )
    bad = await conductor.start(
        workflow["name"],
        {"kafka_bootstrap_servers": bootstrap, "name": "No Mail", "email": "not-an-email"},
    )
    finished = await conductor.finish([good, bad])

    done = finished[good]
    assert done["status"] == "COMPLETED", done.get("reasonForIncompletion")
    assert task(done, "KAFKA_PUBLISH")["status"] == "COMPLETED"
    wait = task(done, "WAIT")
    assert wait["status"] == "COMPLETED"
    assert wait["outputData"]["result"]["object"] == "customer"
    assert wait["outputData"]["idempotency_key"].startswith(f"{good}:await_create_customer:")
    customer_id = wait["outputData"]["result"]["id"]
    assert task(done, "INLINE")["outputData"]["result"]["id"] == customer_id
    assert done["output"]["customer_id"] == customer_id
    assert done["output"]["greeting"] == f"Welcome, {wait['outputData']['result']['name']}"

    failed = finished[bad]
    assert failed["status"] == "FAILED"
    assert task(failed, "WAIT")["status"] == "FAILED"
    assert task(failed, "WAIT")["outputData"]["error"]["param"] == "$.email"
    assert "INLINE" not in {t["taskType"] for t in failed["tasks"]}

    records = await read_to_end(conductor.kafka.connection, topics.requests)
    [record] = [r for r in records if r.key == f"{good}:await_create_customer".encode()]
    request = msgspec.json.decode(record.value or b"")
    assert request["operation"] == "create_customer"
    assert request["workflowInstanceId"] == good
    assert request["taskRefName"] == "await_create_customer"
    assert request["reply_topic"] == wait_reply_topic(topics.replies)

"""e2e tier: a real Conductor server runs workflows whose EVENT tasks reach the service
through Kafka and are completed or failed by the shipped event handlers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from consumer.conductor.assets import (
    all_event_handlers,
    chain_workflows,
    event_handlers,
    operation_workflows,
)
from consumer.conductor.client import ConductorClient
from tests.support.service import (
    KafkaClient,
    RunningService,
    Topics,
    running_service,
    service_settings,
)
from tests.support.stack import StandIn, standin_request

pytestmark = pytest.mark.e2e
TERMINAL = {"COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"}


@dataclass
class Conductor:
    """The registered Conductor, two services behind it, and a way to run workflows."""

    client: ConductorClient
    main: Topics  # answered with Stripe's own mock
    faults: Topics  # answered with the stand-in (declines, side-effect counts)
    main_service: RunningService
    faults_service: RunningService
    kafka: KafkaClient
    standin: StandIn
    started: dict[str, str] = field(default_factory=dict)

    async def start(self, name: str, workflow_input: dict[str, Any]) -> str:
        return await asyncio.to_thread(self.client.start_workflow, name, workflow_input)

    async def finish(
        self, workflow_ids: list[str], timeout_s: float = 180
    ) -> dict[str, dict[str, Any]]:
        """Poll until every workflow is terminal; their executions (with tasks)."""
        done: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while len(done) < len(workflow_ids):
            for workflow_id in workflow_ids:
                if workflow_id not in done:
                    execution = await asyncio.to_thread(self.client.workflow, workflow_id)
                    if execution["status"] in TERMINAL:
                        done[workflow_id] = execution
            if time.monotonic() > deadline:
                pending = [w for w in workflow_ids if w not in done]
                raise TimeoutError(f"workflows not finished in {timeout_s}s: {pending}")
            await asyncio.sleep(0.5)
        return done


def ad_hoc_workflow(name: str, request_topic: str, task_inputs: dict[str, Any]) -> dict[str, Any]:
    """One EVENT task on the given request topic (for the stand-in's service)."""
    operation = task_inputs["operation"]
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "ownerEmail": "tests@example.com",
        "tasks": [
            {
                "name": f"stripe_{operation}",
                "taskReferenceName": operation,
                "type": "EVENT",
                "sink": f"kafka:{request_topic}",
                "asyncComplete": True,
                "inputParameters": {
                    "taskId": "${CPEWF_TASK_ID}",
                    "taskRefName": operation,
                    **task_inputs,
                },
            }
        ],
        "outputParameters": {"result": f"${{{operation}.output.result}}"},
        "timeoutSeconds": 600,
    }


@pytest_asyncio.fixture(scope="package")
async def conductor(
    stack: dict[str, str], conductor_url: str, standin: StandIn
) -> AsyncIterator[Conductor]:
    main, faults = Topics(), Topics()
    client = ConductorClient(conductor_url)
    # Register the handlers first: a new handler's topic is subscribed within 60 s. The main
    # topics get the KAFKA_PUBLISH style's handlers (on `<replies>.wait`) too.
    await asyncio.to_thread(
        client.upsert_event_handlers, all_event_handlers(main.replies, suffix=f"_{main.prefix}")
    )
    await asyncio.to_thread(
        client.upsert_event_handlers, event_handlers(faults.replies, suffix=f"_{faults.prefix}")
    )
    await asyncio.to_thread(
        client.upsert_workflows, operation_workflows(main.requests) + chain_workflows(main.requests)
    )
    await standin_request(standin.url, "POST", "/_standin/reset")
    await standin_request(standin.url, "POST", "/_standin/config", {"latency_ms": 1500})
    faults_stack = {**stack, "STRIPE_API_BASE": standin.url}
    async with (
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], main) as kafka,
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], faults),
        running_service(service_settings(stack, main)) as main_service,
        running_service(service_settings(faults_stack, faults)) as faults_service,
    ):
        yield Conductor(client, main, faults, main_service, faults_service, kafka, standin)

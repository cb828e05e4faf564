"""Real Conductor workflows, end to end: EVENT task -> Kafka -> the service -> Stripe ->
reply -> the shipped event handler -> the task completes (or fails, with the reason)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from consumer.conductor.assets import CHAIN_EXAMPLE_INPUTS
from consumer.contract.examples import EXAMPLE_PARAMETERS, EXPECTED_OBJECT
from consumer.contract.requests import OPERATION_NAMES
from tests.e2e.conftest import Conductor, ad_hoc_workflow
from tests.support.stack import standin_request

# A test's limit covers its fixtures' setup: here a Conductor start, the event handlers'
# first poll of the reply topic and 23 workflows run together.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def task(execution: dict[str, Any], ref: str) -> dict[str, Any]:
    return next(t for t in execution["tasks"] if t["referenceTaskName"] == ref)


@pytest_asyncio.fixture(scope="module")
async def executions(conductor: Conductor) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """Every example workflow, started at once: one per operation and the two chains."""
    inputs = {
        f"stripe_{op}": EXAMPLE_PARAMETERS[op] for op in OPERATION_NAMES
    } | CHAIN_EXAMPLE_INPUTS
    ids = {
        name: await conductor.start(name, workflow_input) for name, workflow_input in inputs.items()
    }
    finished = await conductor.finish(list(ids.values()))
    yield {name: finished[workflow_id] for name, workflow_id in ids.items()}


@pytest.mark.parametrize("operation", OPERATION_NAMES)
def test_operation_workflow_completes_with_the_stripe_object(
    operation: str, executions: dict[str, dict[str, Any]]
) -> None:
    """The EVENT task is completed by the reply; its output holds the Stripe object."""
    execution = executions[f"stripe_{operation}"]
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    event_task = task(execution, operation)
    assert event_task["status"] == "COMPLETED"
    assert event_task["outputData"]["result"]["object"] == EXPECTED_OBJECT[operation]
    assert execution["output"]["result"]["object"] == EXPECTED_OBJECT[operation]
    assert event_task["outputData"]["idempotency_key"].startswith(
        f"{execution['workflowId']}:{operation}:"
    )


def test_customer_payment_intent_chain_passes_ids_along(
    executions: dict[str, dict[str, Any]],
) -> None:
    """create_customer -> create_payment_intent (for that customer) -> get -> cancel."""
    execution = executions["stripe_customer_payment_intent_chain"]
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    customer_id = task(execution, "create_customer")["outputData"]["result"]["id"]
    intent = task(execution, "create_payment_intent")
    assert customer_id.startswith("cus_")
    assert intent["inputData"]["customer_id"] == customer_id
    intent_id = intent["outputData"]["result"]["id"]
    assert task(execution, "get_payment_intent")["inputData"]["payment_intent_id"] == intent_id
    assert task(execution, "cancel_payment_intent")["inputData"]["payment_intent_id"] == intent_id
    assert execution["output"]["customer_id"] == customer_id
    assert execution["output"]["payment_intent_id"] == intent_id


def test_charge_refund_chain_passes_ids_along(executions: dict[str, dict[str, Any]]) -> None:
    """create_charge -> create_refund (of that charge) -> get_refund (that refund)."""
    execution = executions["stripe_charge_refund_chain"]
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    charge_id = task(execution, "create_charge")["outputData"]["result"]["id"]
    refund = task(execution, "create_refund")
    assert refund["inputData"]["charge_id"] == charge_id
    refund_id = refund["outputData"]["result"]["id"]
    assert task(execution, "get_refund")["inputData"]["refund_id"] == refund_id
    assert execution["output"]["refund_id"] == refund_id


async def test_bad_request_fails_the_workflow_with_the_reason(conductor: Conductor) -> None:
    """A validation error reaches Conductor as a failed task with the reply's reason."""
    workflow_id = await conductor.start(
        "stripe_create_charge", {"amount": 0, "currency": "usd", "source": "tok_visa"}
    )
    execution = (await conductor.finish([workflow_id]))[workflow_id]
    assert execution["status"] == "FAILED"
    failed = task(execution, "create_charge")
    assert failed["status"] == "FAILED"
    assert (
        failed["reasonForIncompletion"] == "validation_error: Expected `int` >= 1 - at `$.amount`"
    )
    assert failed["outputData"]["error"]["param"] == "$.amount"


async def test_declined_card_fails_the_workflow_with_the_reason(conductor: Conductor) -> None:
    """Stripe's decline (the stand-in plays it) fails the task with Stripe's reason."""
    name = f"{conductor.faults.prefix}_declined_charge"
    workflow = ad_hoc_workflow(
        name,
        conductor.faults.requests,
        {
            "operation": "create_charge",
            "amount": 4200,
            "currency": "usd",
            "source": "tok_chargeDeclined",
        },
    )
    await asyncio.to_thread(conductor.client.upsert_workflows, [workflow])
    workflow_id = await conductor.start(name, {})
    execution = (await conductor.finish([workflow_id]))[workflow_id]
    assert execution["status"] == "FAILED"
    failed = task(execution, "create_charge")
    assert failed["reasonForIncompletion"] == "generic_decline: Your card was declined."
    assert failed["outputData"]["error"]["decline_code"] == "generic_decline"


async def test_republished_pending_task_has_one_side_effect(conductor: Conductor) -> None:
    """Conductor publishes a pending EVENT task's record again; the charge executes once."""
    name = f"{conductor.faults.prefix}_charge_once"
    workflow = ad_hoc_workflow(
        name,
        conductor.faults.requests,
        {"operation": "create_charge", "amount": 4300, "currency": "usd", "source": "tok_visa"},
    )
    await asyncio.to_thread(conductor.client.upsert_workflows, [workflow])
    workflow_id = await conductor.start(name, {})
    execution = (await conductor.finish([workflow_id]))[workflow_id]
    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    charge_task = task(execution, "create_charge")
    key = charge_task["outputData"]["idempotency_key"]
    published = await conductor.kafka.read(
        conductor.faults.requests, 1, keys={charge_task["taskId"]}, per_key=2, timeout_s=60
    )
    assert len(published) >= 2  # Conductor published the same task's record more than once
    # Wait until the service answered both copies: the stand-in's count is final only then.
    await conductor.kafka.read(
        conductor.faults.replies, 1, keys={charge_task["taskId"]}, per_key=2, timeout_s=60
    )
    stats = await standin_request(conductor.standin.url, "GET", "/_standin/stats?full=1")
    assert stats["executions"][key] == 1

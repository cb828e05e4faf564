"""DO_WHILE loops through the real Conductor: the shipped installments workflow passes the
loop's iteration, so two iterations with equal parameters are two charges at Stripe, and a
Conductor retry inside an iteration (a new taskId) charges nothing more. The project's Stripe
stand-in counts executions per idempotency key, as Stripe's idempotency layer would see them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from consumer.conductor.assets import INSTALLMENT_TASK, LOOP_EXAMPLE_INPUTS, loop_workflows
from tests.e2e.conftest import Conductor
from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import standin_request

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

STANDIN_LATENCY_MS = 1500  # what the e2e package configures (tests/e2e/conftest.py)


async def _standin_executions(conductor: Conductor, prefix: str) -> Counter[str]:
    stats = await standin_request(conductor.standin.url, "GET", "/_standin/stats?full=1")
    return Counter({k: n for k, n in stats["executions"].items() if k.startswith(prefix)})


async def _calls_with_key(conductor: Conductor, key: str) -> int:
    stats = await standin_request(conductor.standin.url, "GET", "/_standin/stats?full=1")
    return sum(1 for call in stats["recent"] if call["idempotency_key"] == key)


async def _wait_for(what: str, check: Any, timeout_s: float) -> Any:
    """Poll ``check()`` (async) until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.2)
    return found


async def test_installments_loop_charges_each_iteration_once(
    conductor: Conductor, stack: dict[str, str]
) -> None:
    """Two iterations, equal parameters: two charges. Iteration 1's first attempt is charged
    at Stripe but answered FAILED (the service gave up waiting), Conductor retries the task
    with a new taskId inside the same iteration, and the retry is Stripe's replay: no third
    charge."""
    loop_topics = Topics()
    [workflow] = loop_workflows(loop_topics.requests)
    workflow["name"] = f"{loop_topics.prefix}_charge_installments"
    await asyncio.to_thread(conductor.client.upsert_workflows, [workflow])
    # A service that waits 1 s for Stripe and never retries in process; its replies go to
    # the topic whose event handlers the package registered.
    settings = service_settings(
        {**stack, "STRIPE_API_BASE": conductor.standin.url},
        loop_topics,
        CONSUMER_REPLY_TOPIC=conductor.faults.replies,
        STRIPE_TIMEOUT_SECONDS="1",
        CONSUMER_RETRY_BUDGET_SECONDS="0",
    )
    # The first charge takes effect at Stripe, then its answer is held past the service's
    # 1 s wait (a connection lost after the call); every later call is answered at once,
    # however soon Conductor retries (a latency for all calls raced the retry: CI failure).
    lost_answer = {
        "faults": [
            {"status": "timeout", "times": 1, "path_prefix": "/v1/charges", "after_effect": True}
        ],
        "hang_seconds": 3,
    }
    await standin_request(conductor.standin.url, "POST", "/_standin/config", lost_answer)
    try:
        async with (
            KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], loop_topics),
            running_service(settings),
        ):
            workflow_id = await conductor.start(
                workflow["name"], LOOP_EXAMPLE_INPUTS["stripe_charge_installments"]
            )
            first_iteration = f"{workflow_id}:{INSTALLMENT_TASK}:1:"
            charged = await _wait_for(
                "iteration 1 charged at the stand-in",
                lambda: _standin_executions(conductor, first_iteration),
                timeout_s=60,
            )
            execution = (await conductor.finish([workflow_id], timeout_s=150))[workflow_id]
            executions = await _standin_executions(conductor, f"{workflow_id}:")
    finally:
        restored = {"latency_ms": STANDIN_LATENCY_MS}
        await standin_request(conductor.standin.url, "POST", "/_standin/config", restored)

    assert execution["status"] == "COMPLETED", execution.get("reasonForIncompletion")
    assert execution["output"]["iterations"] == 2
    attempts: dict[str, list[dict[str, Any]]] = {}
    for task in execution["tasks"]:
        if task["taskType"] == "EVENT":
            attempts.setdefault(task["referenceTaskName"], []).append(task)
    # Conductor names the loop's tasks `<ref>__<iteration>`, counting from 1.
    assert sorted(attempts) == [f"{INSTALLMENT_TASK}__1", f"{INSTALLMENT_TASK}__2"]
    first, second = attempts[f"{INSTALLMENT_TASK}__1"], attempts[f"{INSTALLMENT_TASK}__2"]
    assert first[0]["status"] == "FAILED"
    assert first[-1]["status"] == "COMPLETED"
    assert len({t["taskId"] for t in first}) == len(first) >= 2  # retried: new taskIds
    assert [t["inputData"]["iteration"] for t in first] == [1] * len(first)
    first_keys = {t["outputData"]["idempotency_key"] for t in first}
    [second_key] = {t["outputData"]["idempotency_key"] for t in second}
    [key] = charged
    assert first_keys == {key}  # every attempt of iteration 1 under one key
    assert key.startswith(first_iteration)
    assert second_key.startswith(f"{workflow_id}:{INSTALLMENT_TASK}:2:")
    # Equal parameters: the same hash, so only the iteration tells the two keys apart.
    assert key.rsplit(":", 1)[1] == second_key.rsplit(":", 1)[1]
    # Two charges at Stripe, one per iteration; the retry reached Stripe and was replayed.
    assert executions == {key: 1, second_key: 1}
    assert await _calls_with_key(conductor, key) >= 2
    charge_ids = {t[-1]["outputData"]["result"]["id"] for t in (first, second)}
    assert len(charge_ids) == 2

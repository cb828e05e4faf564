"""The demo through a real Conductor: register the handlers and example workflows, run one
workflow per operation and the chains, and report each workflow and EVENT task."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from consumer.conductor.assets import CHAIN_EXAMPLE_INPUTS, all_event_handlers, all_workflows
from consumer.conductor.client import ConductorClient
from consumer.conductor.kafka_publish import KAFKA_PUBLISH_WORKFLOW
from consumer.contract.examples import EXAMPLE_PARAMETERS
from consumer.contract.requests import OPERATION_NAMES


def _task_summary(task: dict[str, Any]) -> str:
    output = task.get("outputData") or {}
    if task.get("status") != "COMPLETED":
        return str(task.get("reasonForIncompletion") or task.get("status"))
    result = output.get("result") or {}
    if result.get("object") == "list":
        return f"list of {len(result.get('data', []))}"
    detail = result.get("id") or result.get("identifier") or result.get("object") or "-"
    extra = f" (status {result['status']})" if isinstance(result.get("status"), str) else ""
    return f"{detail}{extra}"


async def _wait_finished(
    client: ConductorClient, started: dict[str, str], timeout_s: float
) -> dict[str, dict[str, Any]]:
    """Poll each workflow until it is terminal or the time is up (a slow answer is polled
    again, not fatal)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    finished: dict[str, dict[str, Any]] = {}
    while len(finished) < len(started) and loop.time() < deadline:
        for label, workflow_id in started.items():
            if label in finished:
                continue
            try:
                execution = await asyncio.to_thread(client.workflow, workflow_id)
            except (TimeoutError, OSError):
                continue
            if execution["status"] in {"COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"}:
                finished[label] = execution
        await asyncio.sleep(1)
    return finished


def conductor_report(executions: dict[str, dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """Each workflow's final status and each EVENT task's output."""
    lines = []
    for name, execution in executions.items():
        status = execution.get("status", "?")
        reason = execution.get("reasonForIncompletion")
        lines.append(f"workflow {labels.get(name, name):<44} {status}")
        for task in execution.get("tasks", []):
            ref = task.get("referenceTaskName", "?")
            lines.append(f"  {ref:<24} {task.get('status', '?'):<10} {_task_summary(task)}")
        if status != "COMPLETED" and reason and not execution.get("tasks"):
            lines.append(f"  {reason}")
    return lines


async def run_conductor_demo(
    conductor_url: str,
    request_topic: str,
    reply_topic: str,
    *,
    kafka_bootstrap: str | None = None,
    started_event: threading.Event | None = None,
    timeout_s: float = 240,
) -> tuple[list[str], int, int]:
    """Register the handlers and examples, run workflows through Conductor, report them
    (the KAFKA_PUBLISH example too when ``kafka_bootstrap`` is given: it needs the address).
    ``started_event`` is set once every workflow is started (the demo does other work while
    they run; a busy machine makes Conductor slow to answer, hence the long HTTP timeout).

    Returns (report lines, operation workflows COMPLETED, operation workflows run).
    """
    client = ConductorClient(conductor_url, timeout_s=60)
    await asyncio.to_thread(client.upsert_event_handlers, all_event_handlers(reply_topic))
    await asyncio.to_thread(client.upsert_workflows, all_workflows(request_topic, reply_topic))
    runs: dict[str, dict[str, Any]] = dict(CHAIN_EXAMPLE_INPUTS)
    if kafka_bootstrap is not None:
        runs[KAFKA_PUBLISH_WORKFLOW] = {
            "kafka_bootstrap_servers": kafka_bootstrap,
            "name": "Jenny Rosen",
            "email": "jenny.rosen@example.com",
        }
    runs["stripe_create_charge#bad"] = {"amount": 0, "currency": "usd", "source": "tok_visa"}
    runs |= {f"stripe_{op}": EXAMPLE_PARAMETERS[op] for op in OPERATION_NAMES}
    started = {
        label: await asyncio.to_thread(client.start_workflow, label.split("#")[0], given)
        for label, given in runs.items()
    }
    print(
        f"conductor: {len(started)} workflows started; waiting for them to finish "
        "(Conductor subscribes to a new handler's topic within 60 s)",
        flush=True,
    )
    if started_event is not None:
        started_event.set()
    finished = await _wait_finished(client, started, timeout_s)
    operations = [f"stripe_{op}" for op in OPERATION_NAMES]
    shown = {  # the chains, the KAFKA_PUBLISH example and the bad request, task by task
        label: finished.get(label, {"status": "NOT FINISHED"})
        for label in runs
        if label not in operations
    }
    labels = {
        "stripe_create_charge#bad": "stripe_create_charge (amount 0: a bad request)",
        KAFKA_PUBLISH_WORKFLOW: f"{KAFKA_PUBLISH_WORKFLOW} (KAFKA_PUBLISH -> WAIT)",
    }
    lines = conductor_report(shown, labels)
    completed = sum(finished.get(name, {}).get("status") == "COMPLETED" for name in operations)
    lines.append(
        f"operation workflows (one EVENT task each): {completed}/{len(operations)} COMPLETED"
    )
    return lines, completed, len(operations)

"""The demo: one request per operation, shaped exactly as a Conductor EVENT task publishes it,
and a table of the replies. Needs a running service (``make demo`` starts everything; the
same operations through a real Conductor are ``conductor/demo.py``)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

from consumer.cli.send import publish_and_collect
from consumer.contract.examples import conductor_requests
from consumer.contract.requests import OPERATION_NAMES
from consumer.settings import load_client_settings


@dataclass(frozen=True, slots=True)
class DemoReport:
    lines: list[str]
    completed: int
    total: int

    def render(self) -> str:
        summary = f"{self.completed}/{self.total} operations COMPLETED"
        return "\n".join([*self.lines, "", summary])


def _summary(reply: dict[str, Any]) -> str:
    output = reply.get("output") or {}
    if reply.get("status") == "COMPLETED":
        if output.get("object") == "list":
            return f"list of {len(output.get('data', []))}"
        return str(output.get("id") or output.get("identifier") or output.get("object"))
    return str(reply.get("reasonForIncompletion"))


def report(replies: dict[str, dict[str, Any]], task_ids: dict[str, str]) -> DemoReport:
    lines = [
        f"{'operation':<24} {'status':<28} Stripe object id or error",
        f"{'-' * 24} {'-' * 28} {'-' * 40}",
    ]
    completed = 0
    for operation in OPERATION_NAMES:
        reply = replies.get(task_ids[operation], {})
        status = reply.get("status", "NO REPLY")
        completed += status == "COMPLETED"
        lines.append(f"{operation:<24} {status:<28} {_summary(reply) if reply else '-'}")
    return DemoReport(lines, completed, len(OPERATION_NAMES))


async def run_demo(environ: dict[str, str], timeout_s: float) -> DemoReport:
    """Publish one Conductor-shaped request per operation and collect the replies."""
    settings = load_client_settings(environ)
    task_ids, payloads = conductor_requests(
        workflow_instance_id=str(uuid.uuid4()), sink=f"kafka:{settings.request_topics[0]}"
    )
    requests = {task_ids[operation]: payload for operation, payload in payloads.items()}
    try:
        replies = await publish_and_collect(settings, requests, timeout_s=timeout_s)
    except TimeoutError:
        replies = {}
    return report(replies, task_ids)


async def demo_command(timeout_s: float) -> int:
    """``python -m consumer demo``: against a service that is already running."""
    result = await run_demo(dict(os.environ), timeout_s)
    print(result.render())
    return 0 if result.completed == result.total else 1

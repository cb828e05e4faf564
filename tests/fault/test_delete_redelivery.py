"""A delete that Stripe carried out but the service never answered (SIGKILL in between) is
answered COMPLETED when redelivered; a delete of an id that never existed still fails."""

from __future__ import annotations

import uuid
from typing import Any

from tests.fault.conftest import Harness


async def create_customer(harness: Harness) -> str:
    key = f"create-{uuid.uuid4().hex[:8]}"
    request = {"operation": "create_customer", "email": "a@example.com", "name": "A"}
    await harness.client.publish(request, key=key)
    reply = (await harness.client.replies(1, keys={key}))[key]
    assert reply["status"] == "COMPLETED"
    customer_id: str = reply["output"]["id"]
    return customer_id


def delete(customer_id: str, task_id: str) -> dict[str, Any]:
    return {
        "operation": "delete_customer",
        "customer_id": customer_id,
        "taskId": task_id,
        "taskRefName": "delete_customer",
        "workflowInstanceId": f"wf-{task_id}",
    }


async def test_a_delete_redelivered_after_a_crash_reports_the_deletion(harness: Harness) -> None:
    """Stripe deletes the customer, the service is killed before it hears back, and the
    redelivered request meets 404 resource_missing: answered COMPLETED, deleted."""
    first = harness.service(STRIPE_TIMEOUT_SECONDS="60").start()
    customer_id = await create_customer(harness)
    hang = {"status": "timeout", "path_prefix": "/v1/customers/", "after_effect": True}
    await harness.configure(faults=[hang], hang_seconds=60)
    await harness.client.publish(delete(customer_id, "del-1"), key="del-1")

    async def deleted_at_stripe() -> bool:
        return int((await harness.stats())["faults_injected"]) == 1  # done, answer held

    await harness.wait_for(deleted_at_stripe, 30, "Stripe to carry out the delete")
    first.kill()
    await harness.configure()
    harness.service().start()
    reply = (await harness.client.replies(1, keys={"del-1"}, timeout_s=60))["del-1"]
    assert (reply["status"], reply["output"]) == (
        "COMPLETED",
        {"id": customer_id, "object": "customer", "deleted": True},
    )
    stats = await harness.stats()
    assert stats["status_counts"].get("404") == 1  # the redelivered delete met the 404


async def test_a_delete_of_an_id_that_never_existed_fails(harness: Harness) -> None:
    """A mistyped id is not taken for a delete done before: resource_missing, terminal."""
    harness.service().start()
    await harness.client.publish(delete("cus_neverCreated", "del-2"), key="del-2")
    reply = (await harness.client.replies(1, keys={"del-2"}))["del-2"]
    assert reply["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert (reply["error"]["code"], reply["error"]["http_status"]) == ("resource_missing", 404)

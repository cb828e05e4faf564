"""Stripe storms: transient failures are retried with the same key within the budget, then
FAILED; never a duplicate side effect; when the storm ends, work completes once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.fault.conftest import Harness


@pytest.mark.parametrize(
    ("status", "error_type"), [(429, "invalid_request_error"), (503, "api_error")]
)
async def test_storm_outliving_the_budget_fails_then_recovers(
    harness: Harness,
    charges: Callable[[int, str], dict[str, dict[str, Any]]],
    status: int,
    error_type: str,
) -> None:
    """Every call rate-limited (429) or failing (503): replies are FAILED (retryable) only
    once the 2 s retry budget is used, never later; nothing executed. After the storm,
    Conductor's retry (new taskId, same workflow and task ref) completes each charge once."""
    requests = charges(20, f"storm{status}")
    await harness.configure(faults=[{"status": status, "times": -1, "path_prefix": "/v1/charges"}])
    service = harness.service(CONSUMER_RETRY_BUDGET_SECONDS="2").start()
    for key, request in requests.items():
        await harness.client.publish(request, key=key)
    records = await harness.client.read(
        harness.topics.replies, len(requests), keys=set(requests), timeout_s=60
    )
    replies = {r.key.decode(): r for r in records if r.key}
    for record in replies.values():
        reply = json.loads(record.value or b"{}")
        assert reply["status"] == "FAILED"
        assert (reply["error"]["type"], reply["error"]["http_status"]) == (error_type, status)
        assert reply["error"]["retryable"] is True
        # Backoff 0.25 s, 0.5 s, 1 s (each jittered to 50-100%) fits the 2 s budget: at
        # least three attempts before giving up.
        assert reply["attempts"] >= 3
    lines = await harness.logged(
        service,
        lambda line: line.get("event") == "request" and line.get("taskId") in requests,
        len(requests),
    )
    durations = [line["duration_ms"] for line in lines]
    assert len(durations) == len(requests)
    # Given up only after the first two backoffs (at least 0.375 s), and within the budget
    # (plus the time of one call).
    assert all(375 <= ms <= 3500 for ms in durations)
    assert (await harness.stats())["executions_total"] == 0
    assert service.metric(
        "stripe_consumer_stripe_retries_total", {"operation": "create_charge"}
    ) >= 2 * len(requests)

    await harness.configure()
    retried = {
        f"{key}-retry": {**request, "taskId": f"{key}-retry"} for key, request in requests.items()
    }
    for key, request in retried.items():
        await harness.client.publish(request, key=key)
    again = await harness.client.replies(len(retried), keys=set(retried), timeout_s=60)
    assert {reply["status"] for reply in again.values()} == {"COMPLETED"}
    stats = await harness.stats()
    assert stats["executions_total"] == len(requests)
    assert stats["keys_executed_more_than_once"] == []


async def test_5xx_storm_is_ridden_out_with_the_same_keys(
    harness: Harness, charges: Callable[[int, str], dict[str, dict[str, Any]]]
) -> None:
    """The first 60 calls fail with 500/503: retries within the budget complete every charge,
    each executed once."""
    requests = charges(30, "storm5xx")
    await harness.configure(
        faults=[
            {"status": 500, "times": 40, "path_prefix": "/v1/charges"},
            {"status": 503, "times": 20, "path_prefix": "/v1/charges"},
        ]
    )
    service = harness.service(CONSUMER_RETRY_BUDGET_SECONDS="20").start()
    for key, request in requests.items():
        await harness.client.publish(request, key=key)
    replies = await harness.client.replies(len(requests), keys=set(requests), timeout_s=90)
    assert {reply["status"] for reply in replies.values()} == {"COMPLETED"}
    assert max(reply["attempts"] for reply in replies.values()) >= 2
    stats = await harness.stats()
    assert stats["faults_injected"] == 60
    assert stats["executions_total"] == len(requests)
    assert stats["keys_executed_more_than_once"] == []
    assert (
        service.metric("stripe_consumer_stripe_retries_total", {"operation": "create_charge"}) == 60
    )

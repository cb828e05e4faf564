"""What SREs watch: every promised metric moves exactly as the traffic implies, scraped from
/metrics over HTTP; /healthz and /readyz answer, and readiness fails while Stripe rejects a
key."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from consumer import __version__
from tests.fault.conftest import Harness

GOOD = 5


def sample(service_metrics: str, name: str, **labels: str) -> float:
    """One sample from a Prometheus text exposition (0 when absent)."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in service_metrics.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric == name and wanted == set(filter(None, label_text.rstrip("}").split(","))):
            return float(value)
    return 0.0


@pytest.mark.timeout(180)
async def test_metrics_move_as_the_traffic_implies(harness: Harness, tmp_path: Path) -> None:
    """N requests, one undecodable record, one retried call, one republished request,
    meter events: each metric shows exactly that."""
    key_dir = tmp_path / "stripe-keys"
    key_dir.mkdir()
    (key_dir / "billing").write_text("sk_test_51RevokedBillingKey0001")
    await harness.configure(
        faults=[{"status": 500, "times": 1, "path_prefix": "/v1/charges"}],
        revoked_keys=["sk_test_51RevokedBillingKey0001"],
    )
    service = harness.service(
        STRIPE_CREDENTIALS_DIR=str(key_dir), CONSUMER_METER_REPLIES="true"
    ).start()
    status, body = service.http_get("/healthz")
    assert status == 200
    status, body = service.http_get("/readyz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})

    client = harness.client
    for i in range(GOOD):
        await client.publish({"operation": "get_balance"}, key=f"balance-{i}")
    await client.publish(b"\x00not json at all", key="garbage")
    charge = {
        "operation": "create_charge",
        "amount": 500,
        "currency": "usd",
        "source": "tok_visa",
        "taskId": "charge-1",
    }
    await client.publish(charge, key="charge-1")
    run = uuid.uuid4().hex[:6]
    for i in range(3):
        event = {
            "operation": "create_meter_event",
            "event_name": "api",
            "customer_id": "cus_1",
            "identifier": f"m-{run}-{i}",
        }
        await client.publish(event, key=f"meter-{i}", topic=harness.topics.meter)
    keys = (
        {f"balance-{i}" for i in range(GOOD)}
        | {"garbage", "charge-1"}
        | {f"meter-{i}" for i in range(3)}
    )
    await client.replies(len(keys), keys=keys, timeout_s=60)
    await client.publish(charge, key="charge-1")  # Conductor republishing the same task
    await client.read(harness.topics.replies, 1, keys={"charge-1"}, per_key=2, timeout_s=30)

    # A request for the rejected integration: held, not failed; readiness reports it.
    await client.publish({"operation": "get_balance", "integration": "billing"}, key="held")

    async def not_ready() -> bool:
        return service.http_get("/readyz")[0] == 503

    await harness.wait_for(not_ready, 30, "/readyz to report the rejected key")
    status, body = service.http_get("/readyz")
    assert json.loads(body) == {"status": "Stripe rejects the key of: billing"}
    assert service.http_get("/healthz")[0] == 200  # alive: nothing to restart

    answered = GOOD + 1 + 2 + 3  # balances, the garbage record, two charge copies, meters

    async def metrics_settled() -> bool:
        """A request's metrics are recorded once Kafka acknowledged its reply, which can be
        after the test read the reply: wait until every answered request is counted."""
        text = service.http_get("/metrics")[1]
        observed = sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if line.startswith("stripe_consumer_requests_total{")
        )
        return (
            observed == answered
            and sample(text, "stripe_consumer_commits_total", result="ok") > 0
            and sample(text, "stripe_consumer_in_flight") == 1
        )

    await harness.wait_for(metrics_settled, 30, "every answered request in the metrics")
    text = service.http_get("/metrics")[1]
    requests = harness.topics.requests
    assert sample(text, "stripe_consumer_records_consumed_total", topic=requests) == GOOD + 4
    assert sample(text, "stripe_consumer_records_consumed_total", topic=harness.topics.meter) == 3
    assert (
        sample(text, "stripe_consumer_requests_total", operation="get_balance", status="COMPLETED")
        == GOOD
    )
    assert (
        sample(
            text, "stripe_consumer_requests_total", operation="create_charge", status="COMPLETED"
        )
        == 2
    )
    assert (
        sample(
            text,
            "stripe_consumer_requests_total",
            operation="unknown",
            status="FAILED_WITH_TERMINAL_ERROR",
        )
        == 1
    )
    assert (
        sample(
            text,
            "stripe_consumer_requests_total",
            operation="create_meter_event",
            status="COMPLETED",
        )
        == 3
    )
    assert (
        sample(text, "stripe_consumer_request_duration_seconds_count", operation="get_balance")
        == GOOD
    )
    assert (
        sample(text, "stripe_consumer_stripe_requests_total", operation="get_balance", outcome="ok")
        == GOOD
    )
    assert (
        sample(
            text,
            "stripe_consumer_stripe_requests_total",
            operation="create_charge",
            outcome="api_error",
        )
        == 1
    )
    assert (
        sample(
            text, "stripe_consumer_stripe_requests_total", operation="create_charge", outcome="ok"
        )
        == 1
    )
    assert (
        sample(
            text,
            "stripe_consumer_stripe_requests_total",
            operation="get_balance",
            outcome="authentication_error",
        )
        >= 1
    )
    assert (
        sample(
            text, "stripe_consumer_stripe_request_duration_seconds_count", operation="create_charge"
        )
        == 2
    )
    assert sample(text, "stripe_consumer_stripe_retries_total", operation="create_charge") == 1
    assert sample(text, "stripe_consumer_deduplicated_total", kind="reply_memory") == 1
    assert sample(text, "stripe_consumer_dlq_total", reason="not_json") == 1
    assert sample(text, "stripe_consumer_meter_events_total", api="v2_stream") == 3
    assert sample(text, "stripe_consumer_credential_rejected", integration="billing") == 1
    assert sample(text, "stripe_consumer_credential_rejected", integration="default") == 0
    assert sample(text, "stripe_consumer_in_flight") == 1  # the held request
    assert sample(text, "stripe_consumer_rebalances_total") >= 1
    assert sample(text, "stripe_consumer_paused_partitions") == 0
    assert sample(text, "stripe_consumer_build_info", version=__version__) == 1
    assert sample(text, "stripe_consumer_last_poll_timestamp_seconds") > 0
    lags = [line for line in text.splitlines() if line.startswith("stripe_consumer_lag{")]
    assert lags  # one series per assigned partition
    assert {float(line.rpartition(" ")[2]) for line in lags} <= {
        0.0,
        1.0,
    }  # only the held one waits


async def test_backlog_shows_in_paused_partitions_and_lag_then_clears(harness: Harness) -> None:
    """A backlog past the buffer bound pauses the partition and shows as lag; once it is
    worked off, both return to zero."""
    await harness.configure(latency_ms=50)
    service = harness.service(CONSUMER_MAX_IN_FLIGHT="2", CONSUMER_MAX_BUFFERED="4").start()
    keys = {f"backlog-{i}" for i in range(60)}
    for key in sorted(keys):
        await harness.client.publish({"operation": "get_balance"}, key=key)
    seen = {"paused": 0.0, "lag": 0.0}

    async def answered() -> bool:
        text = service.http_get("/metrics")[1]
        seen["paused"] = max(seen["paused"], sample(text, "stripe_consumer_paused_partitions"))
        lags = [line for line in text.splitlines() if line.startswith("stripe_consumer_lag{")]
        seen["lag"] = max([seen["lag"], *(float(line.rpartition(" ")[2]) for line in lags)])
        done = sample(
            text, "stripe_consumer_requests_total", operation="get_balance", status="COMPLETED"
        )
        return done == len(keys)

    await harness.wait_for(answered, 60, "the backlog answered")
    assert seen["paused"] >= 1
    assert seen["lag"] > 4  # more behind than the buffer holds

    async def cleared() -> bool:
        text = service.http_get("/metrics")[1]
        lags = [line for line in text.splitlines() if line.startswith("stripe_consumer_lag{")]
        return sample(text, "stripe_consumer_paused_partitions") == 0 and all(
            float(line.rpartition(" ")[2]) == 0 for line in lags
        )

    await harness.wait_for(cleared, 10, "no pause and no lag once answered")

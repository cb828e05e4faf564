"""Credentials and Connect through the real broker, with the stand-in answering as Stripe
does: a connected account without access fails that request alone and at once; a rejected
platform key holds its integration's requests (outside the worker slots, other integrations
flowing) for at most the hold, then answers each FAILED and commits it; the key is probed
once per interval, however many requests wait."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from consumer.kafka.records import InboundRecord
from tests.fault.conftest import Harness
from tests.support.process import ServiceProcess

REVOKED_KEY = "sk_test_51RevokedBillingKeyForHold"
HOLD_SECONDS = 6
PROBE_SECONDS = 1


def charge(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "operation": "create_charge",
        "amount": 700,
        "currency": "usd",
        "source": "tok_visa",
        "taskId": key,
        "workflowInstanceId": f"wf-{key}",
        "taskRefName": "charge",
        **extra,
    }


def decoded(records: list[InboundRecord]) -> dict[str, dict[str, Any]]:
    """The last record per key, decoded."""
    return {r.key.decode(): json.loads(r.value) for r in records if r.key and r.value}


def with_billing_key(tmp_path: Path) -> str:
    keys = tmp_path / "stripe-keys"
    keys.mkdir()
    (keys / "billing").write_text(REVOKED_KEY)
    return str(keys)


@pytest.mark.timeout(120)
async def test_connected_account_401_and_403_are_answered_at_once_while_others_flow(
    harness: Harness,
) -> None:
    """Two connected accounts without access (403, and 401 as older API versions answer):
    each request naming one is answered FAILED_WITH_TERMINAL_ERROR at once, typed
    permission_error / authentication_error; every other request of the same integration
    (platform and other accounts) completes; the key is never probed, readiness and the
    gauge never move, and every offset is committed."""
    await harness.configure(revoked_accounts={"acct_1Revoked403": 403, "acct_1Revoked401": 401})
    service = harness.service(CONSUMER_CREDENTIAL_PROBE_SECONDS="0.5").start()
    run = uuid.uuid4().hex[:6]
    failing = {
        f"c403-{run}": charge(f"c403-{run}", stripe_account="acct_1Revoked403"),
        f"c401-{run}": charge(f"c401-{run}", stripe_account="acct_1Revoked401"),
    }
    flowing = {f"ok-{run}-{i}": charge(f"ok-{run}-{i}") for i in range(8)}
    flowing |= {
        f"acct-{run}-{i}": charge(f"acct-{run}-{i}", stripe_account="acct_1Fine") for i in range(4)
    }
    for key, value in {**failing, **flowing}.items():
        await harness.client.publish(value, key=key)
    replies = await harness.client.replies(
        len(failing) + len(flowing), keys=set(failing) | set(flowing), timeout_s=45
    )

    c403, c401 = replies[f"c403-{run}"], replies[f"c401-{run}"]
    assert (c403["status"], c403["error"]["type"], c403["error"]["http_status"]) == (
        "FAILED_WITH_TERMINAL_ERROR",
        "permission_error",
        403,
    )
    assert (c401["status"], c401["error"]["type"], c401["error"]["http_status"]) == (
        "FAILED_WITH_TERMINAL_ERROR",
        "authentication_error",
        401,
    )
    for reply in (c403, c401):
        assert reply["error"]["code"] == "account_invalid"
        assert reply["error"]["retryable"] is False
        assert reply["attempts"] == 1
    assert {replies[key]["status"] for key in flowing} == {"COMPLETED"}

    async def committed() -> bool:
        return await harness.all_committed(harness.topics.requests)

    await harness.wait_for(committed, 30, "every offset committed")
    stats = await harness.stats()
    assert stats["calls_by_path"].get("/v1/balance", 0) == 0  # nothing probed
    assert service.http_get("/readyz")[0] == 200
    assert service.metric("stripe_consumer_credential_rejected", {"integration": "default"}) == 0
    assert service.metric("stripe_consumer_in_flight") == 0


@pytest.mark.timeout(180)
async def test_rejected_key_holds_its_requests_for_the_hold_while_others_flow(
    harness: Harness, tmp_path: Path
) -> None:
    """Integration `billing`'s key is rejected. With two worker slots, its five requests
    come first, yet the default integration's ten requests and usage complete meanwhile;
    billing's requests and usage wait (readiness and the gauge say why) and, after the hold
    (6 s here), each is answered FAILED with authentication_error: requests by reply, usage
    without a reply to the DLQ; every offset is committed; the key was probed at most once
    per probe interval."""
    await harness.configure(revoked_keys=[REVOKED_KEY])
    service = harness.service(
        STRIPE_CREDENTIALS_DIR=with_billing_key(tmp_path),
        CONSUMER_MAX_IN_FLIGHT="2",
        CONSUMER_CREDENTIAL_HOLD_SECONDS=str(HOLD_SECONDS),
        CONSUMER_CREDENTIAL_PROBE_SECONDS=str(PROBE_SECONDS),
    ).start()
    run = uuid.uuid4().hex[:6]
    held = {
        f"billing-{run}-{i}": charge(f"billing-{run}-{i}", integration="billing") for i in range(5)
    }
    flowing = {f"default-{run}-{i}": charge(f"default-{run}-{i}") for i in range(10)}
    started = time.monotonic()
    for key, value in {**held, **flowing}.items():
        await harness.client.publish(value, key=key)
    usage = {
        f"use-{run}-{name}-{i}": {
            "operation": "create_meter_event",
            "event_name": "api_requests",
            "customer_id": "cus_1",
            "identifier": f"use-{run}-{name}-{i}",
            "integration": name,
        }
        for name in ("billing", "default")
        for i in range(3)
    }
    for identifier, event in usage.items():
        await harness.client.publish(event, key=identifier, topic=harness.topics.meter)

    # The other integration flows while billing is held (its requests took no slot).
    await harness.client.replies(len(flowing), keys=set(flowing), timeout_s=60)
    status, body = service.http_get("/readyz")
    assert (status, json.loads(body)) == (503, {"status": "Stripe rejects the key of: billing"})
    assert service.metric("stripe_consumer_credential_rejected", {"integration": "billing"}) == 1
    assert service.metric("stripe_consumer_credential_rejected", {"integration": "default"}) == 0

    async def default_usage_counted() -> bool:
        deliveries = (await harness.stats(full=True))["meter_deliveries"]
        return all(f"use-{run}-default-{i}" in deliveries for i in range(3))

    await harness.wait_for(default_usage_counted, 30, "the default integration's usage counted")

    # After the hold: every held request answered FAILED, authentication_error.
    replies = await harness.client.read(
        harness.topics.replies,
        len(held) + len(flowing),
        keys=set(held) | set(flowing),
        timeout_s=60,
    )
    requests = await harness.client.read(harness.topics.requests, len(held), keys=set(held))
    published_ms = {r.key.decode(): r.timestamp_ms for r in requests if r.key}
    answered = decoded(replies)
    for key in held:
        reply = answered[key]
        assert reply["status"] == "FAILED", reply
        assert reply["error"]["type"] == "authentication_error"
        assert reply["error"]["retryable"] is True
        assert "Invalid API Key provided" in reply["error"]["message"]
        assert REVOKED_KEY not in json.dumps(reply)
        waited_ms = (
            next(r.timestamp_ms for r in replies if r.key and r.key.decode() == key)
            - (published_ms[key])
        )
        assert waited_ms >= (HOLD_SECONDS - 1) * 1000, f"{key} answered before the hold"
    assert {answered[key]["status"] for key in flowing} == {"COMPLETED"}

    # Usage of the rejected key: not lost, in the DLQ with the reason, never at Stripe.
    dead = await harness.client.read(
        harness.topics.dlq, 3, keys={f"use-{run}-billing-{i}" for i in range(3)}, timeout_s=30
    )
    assert {dict(r.headers).get("dlq.reason") for r in dead} == {b"refused"}
    deliveries = (await harness.stats(full=True))["meter_deliveries"]
    assert not any(f"use-{run}-billing" in identifier for identifier in deliveries)

    async def all_committed() -> bool:
        return await harness.all_committed(harness.topics.requests) and (
            await harness.all_committed(harness.topics.meter)
        )

    await harness.wait_for(all_committed, 30, "every offset committed after the hold")
    elapsed = time.monotonic() - started
    probes = (await harness.stats())["calls_by_path"].get("/v1/balance", 0)
    assert 1 <= probes <= elapsed / PROBE_SECONDS + 1, (probes, elapsed)
    assert (
        service.metric(
            "stripe_consumer_credential_probes_total",
            {"integration": "billing", "result": "rejected"},
        )
        == probes
    )
    assert service.http_get("/readyz")[0] == 503  # still rejected: readiness keeps saying so
    assert service.metric("stripe_consumer_in_flight") == 0


@pytest.mark.timeout(120)
async def test_restored_key_releases_held_requests_each_charged_once(
    harness: Harness, tmp_path: Path
) -> None:
    """Billing's key is rejected, then restored (a rotation completing) within the hold:
    the held requests run once the probe finds the key works, each charged exactly once;
    readiness and the gauge return to normal."""
    await harness.configure(revoked_keys=[REVOKED_KEY])
    service: ServiceProcess = harness.service(
        STRIPE_CREDENTIALS_DIR=with_billing_key(tmp_path),
        CONSUMER_CREDENTIAL_HOLD_SECONDS="300",
        CONSUMER_CREDENTIAL_PROBE_SECONDS="0.5",
    ).start()
    run = uuid.uuid4().hex[:6]
    held = {
        f"billing-{run}-{i}": charge(f"billing-{run}-{i}", integration="billing") for i in range(6)
    }
    for key, value in held.items():
        await harness.client.publish(value, key=key)

    async def rejected() -> bool:
        return service.metric("stripe_consumer_credential_held", {"integration": "billing"}) == 6

    await harness.wait_for(rejected, 30, "billing's requests held")
    assert service.http_get("/readyz")[0] == 503
    await harness.configure(revoked_keys=[])
    replies = await harness.client.replies(len(held), keys=set(held), timeout_s=30)
    assert {reply["status"] for reply in replies.values()} == {"COMPLETED"}
    stats = await harness.stats(full=True)
    keys = {f"wf-{key}" for key in held}
    executed = {k: n for k, n in stats["executions"].items() if k.split(":")[0] in keys}
    assert len(executed) == len(held)
    assert set(executed.values()) == {1}

    async def ready() -> bool:
        return service.http_get("/readyz")[0] == 200

    await harness.wait_for(ready, 10, "readiness back")
    assert service.metric("stripe_consumer_credential_rejected", {"integration": "billing"}) == 0
    assert service.metric("stripe_consumer_credential_held", {"integration": "billing"}) == 0

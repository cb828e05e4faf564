"""Secrets never leave the process: canary keys appear in no log line, reply, DLQ record,
metric, health answer or error message, even where Stripe echoes a key back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fault.conftest import Harness
from tests.support.process import free_port

DEFAULT_KEY = "sk_test_51CanaryDefaultKeyXyZ123"
BILLING_KEY = "rk_live_51CanaryBillingKeyQwE456"  # revoked: the 401 quotes it back
REDIS_PASSWORD = "CanaryRedisPassword789"  # in a URL whose server refuses: errors get logged
CANARIES = ("CanaryDefaultKeyXyZ123", "CanaryBillingKeyQwE456", REDIS_PASSWORD)


@pytest.mark.timeout(120)
async def test_canary_secrets_appear_nowhere(harness: Harness, tmp_path: Path) -> None:
    """Drive every path that handles a secret, then search everything the service emitted."""
    key_dir = tmp_path / "stripe-keys"
    key_dir.mkdir()
    (key_dir / "billing").write_text(BILLING_KEY)
    await harness.configure(revoked_keys=[BILLING_KEY])
    redis = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"
    service = harness.service(
        STRIPE_API_KEY=DEFAULT_KEY,
        STRIPE_CREDENTIALS_DIR=str(key_dir),
        CONSUMER_REDIS_URL=redis,
        LOG_LEVEL="DEBUG",
    ).start()
    client = harness.client
    await client.publish({"operation": "get_balance"}, key="ok")
    await client.publish(
        {
            "operation": "create_charge",
            "amount": 1,
            "currency": "usd",
            "source": "tok_chargeDeclined",
        },
        key="declined",
    )
    await client.publish({"operation": "get_customer", "customer_id": "pi_wrong"}, key="invalid")
    await client.publish(b"not json", key="dead-letter")
    await client.publish({"operation": "get_balance", "integration": "billing"}, key="held")
    await client.publish(
        {
            "operation": "create_meter_event",
            "event_name": "api",
            "customer_id": "cus_1",
            "identifier": "canary-meter",
        },
        key="meter",
        topic=harness.topics.meter,
    )
    replies = await client.read(
        harness.topics.replies, 4, keys={"ok", "declined", "invalid", "dead-letter"}
    )
    dead_letters = await client.read(harness.topics.dlq, 1)

    async def rejected() -> bool:
        return service.http_get("/readyz")[0] == 503

    await harness.wait_for(rejected, 30, "the rejected key to be noticed")
    # Wait until the leak paths were really exercised (Stripe quoted the key, Redis refused
    # the password) and logged: the log is written after the replies arrive.
    for message in ("Invalid API Key provided: [redacted]", "identifier ledger unavailable"):

        def says(line: dict[str, Any], message: str = message) -> bool:
            return message in json.dumps(line)

        await harness.logged(service, says, 1)
    log = "\n".join(service.log_lines())
    outputs = {
        "log": log,
        "replies": b"\n".join(
            (r.value or b"") + b"".join(v for _, v in r.headers) for r in replies
        ).decode(errors="replace"),
        "dlq": b"\n".join(
            (r.value or b"") + b"".join(v for _, v in r.headers) for r in dead_letters
        ).decode(errors="replace"),
        "metrics": service.http_get("/metrics")[1],
        "readyz": service.http_get("/readyz")[1],
        "healthz": service.http_get("/healthz")[1],
    }
    for where, text in outputs.items():
        for canary in CANARIES:
            assert canary not in text, f"{canary} leaked into {where}"
    # The leak paths were really exercised: Stripe quoted the key, Redis refused the password.
    assert "Invalid API Key provided: [redacted]" in log
    assert "identifier ledger unavailable" in log
    assert service.terminate() == 0
    assert all(canary not in "\n".join(service.log_lines()) for canary in CANARIES)

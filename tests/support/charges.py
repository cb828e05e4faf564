"""A charge the running service has made and answered once: the start of the tests that send
its request again (republished by Conductor, replayed from the DLQ) and check that Stripe
still executed it once."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from consumer.contract.examples import conductor_event_payload
from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import StandIn, standin_request


@dataclass(frozen=True)
class AnsweredCharge:
    """The service's client and topics, the charge request as published, and its reply."""

    client: KafkaClient
    topics: Topics
    task_id: str
    request: dict[str, Any]
    reply: dict[str, Any]


@contextlib.asynccontextmanager
async def answered_charge(
    stack: dict[str, str], standin: StandIn, amount: int
) -> AsyncIterator[AnsweredCharge]:
    """The service running on its own topics against a freshly reset stand-in (which counts
    executions per idempotency key), with one charge of ``amount`` published and answered."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    topics = Topics()
    task_id = str(uuid.uuid4())
    charge = conductor_event_payload(
        "create_charge",
        {"amount": amount, "currency": "usd", "source": "tok_visa"},
        task_id=task_id,
        task_ref_name="charge_card",
    )
    settings = service_settings({**stack, "STRIPE_API_BASE": standin.url}, topics)
    async with (
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client,
        running_service(settings),
    ):
        await client.publish(charge, key=task_id)
        reply = (await client.replies(1, keys={task_id}))[task_id]
        yield AnsweredCharge(client, topics, task_id, charge, reply)

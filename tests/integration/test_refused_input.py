"""Input Stripe would misread, or refuse only later, is refused up front, through the real
broker: a reply topic, currency, id, event name or key with a trailing newline (identifiers
are matched whole), and a meter value of more than 15 significant digits (which the v2 stream
accepts and reports lost afterwards), get a validation-error reply on the default reply topic
and never reach Stripe (the stand-in counts every call it receives)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import StandIn, standin_request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TOPICS = Topics()
METER = {"operation": "create_meter_event", "customer_id": "cus_1", "taskId": "meter-task"}
# name: (request, the field at fault, the rejection's message)
BAD: dict[str, tuple[dict[str, Any], str, str]] = {
    "reply_topic": (
        {"operation": "get_balance", "reply_topic": f"{TOPICS.replies}\n"},
        "$.reply_topic",
        "Expected a Kafka topic name - at `$.reply_topic`",
    ),
    "reply_topic_suffix": (
        {"operation": "get_balance", "reply_topic": f"{TOPICS.replies}.billing\n"},
        "$.reply_topic",
        "Expected a Kafka topic name - at `$.reply_topic`",
    ),
    "currency": (
        {"operation": "create_charge", "amount": 4200, "currency": "usd\n", "source": "tok_visa"},
        "$.currency",
        "Expected a three-letter ISO currency code - at `$.currency`",
    ),
    "customer_id": (
        {"operation": "create_payment_intent", "amount": 4200, "currency": "usd",
         "customer_id": "cus_1\n"},
        "$.customer_id",
        "Expected a Stripe customer id (cus_…) - at `$.customer_id`",
    ),
    "get_customer": (
        {"operation": "get_customer", "customer_id": "cus_1\n"},
        "$.customer_id",
        "Expected a Stripe customer id (cus_…) - at `$.customer_id`",
    ),
    "idempotency_key": (
        {"operation": "create_charge", "amount": 4200, "currency": "usd", "source": "tok_visa",
         "idempotency_key": "order-1\r\n"},
        "$.idempotency_key",
        "Expected text without control characters - at `$.idempotency_key`",
    ),
    "integration": (
        {"operation": "get_balance", "integration": "default\n"},
        "$.integration",
        "Expected an integration name (letters, digits, `_`, `.`, `-`) - at `$.integration`",
    ),
}  # fmt: skip
BAD_METER: dict[str, tuple[dict[str, Any], str, str]] = {
    "event_name": (
        {**METER, "event_name": "api_calls\n"},
        "$.event_name",
        "Expected text without control characters - at `$.event_name`",
    ),
    "identifier": (
        {**METER, "event_name": "api_calls", "identifier": "usage-1\n"},
        "$.identifier",
        "Expected text without control characters - at `$.identifier`",
    ),
    "value": (
        {**METER, "event_name": "api_calls", "identifier": "usage-2", "value": "1234567890.123456"},
        "$.value",
        "Expected a number with at most 15 significant digits (Stripe's limit) and at most "
        "12 decimals, below 10^15 in magnitude",
    ),
}
KEYS = {name: f"{name}-{uuid.uuid4().hex[:6]}" for name in [*BAD, *BAD_METER]}
GOOD_KEY = f"good-{uuid.uuid4().hex[:6]}"


@pytest_asyncio.fixture(scope="module")
async def answered(
    stack: dict[str, str], standin: StandIn
) -> AsyncIterator[tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]]:
    """Every bad request, then one good one on an allowed custom reply topic; the replies on
    the default topic, the good reply, and the stand-in's count of calls."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], TOPICS) as client:
        for name, (value, _, _) in BAD.items():
            await client.publish(value, key=KEYS[name])
        for name, (value, _, _) in BAD_METER.items():
            await client.publish(value, key=KEYS[name], topic=TOPICS.meter)
        good = {"operation": "get_balance", "reply_topic": f"{TOPICS.replies}.billing"}
        await client.publish(good, key=GOOD_KEY)
        settings = service_settings(
            {**stack, "STRIPE_API_BASE": standin.url}, TOPICS, STRIPE_METER_EVENTS_BASE=standin.url
        )
        async with running_service(settings):
            replies = await client.replies(len(KEYS), keys=set(KEYS.values()), timeout_s=60)
            billing = await client.read(f"{TOPICS.replies}.billing", 1, keys={GOOD_KEY})
        stats = await standin_request(standin.url, "GET", "/_standin/stats")
        yield replies, {r.key.decode(): r for r in billing if r.key}, stats


@pytest.mark.parametrize("name", sorted({**BAD, **BAD_METER}))
def test_refused_input_gets_a_validation_error_on_the_default_topic(
    name: str, answered: tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]
) -> None:
    """A trailing newline, or a 16-digit meter value, is a terminal validation error naming
    the field, answered at once on the default reply topic (a reply topic with a newline was
    answered only after 30 s, as `reply_undeliverable`)."""
    replies, _, _ = answered
    _, param, message = {**BAD, **BAD_METER}[name]
    reply = replies[KEYS[name]]
    assert reply["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert reply["error"]["type"] == "validation_error"
    assert (reply["error"]["param"], reply["error"]["message"]) == (param, message)


def test_nothing_refused_reaches_stripe(
    answered: tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]],
) -> None:
    """Stripe saw one call: the good request's; the good reply went to its allowed topic."""
    _, billing, stats = answered
    assert billing[GOOD_KEY].value is not None
    assert b'"status":"COMPLETED"' in billing[GOOD_KEY].value
    assert stats["calls_by_path"] == {"/v1/balance": 1}
    assert stats["meter_events_delivered"] == 0

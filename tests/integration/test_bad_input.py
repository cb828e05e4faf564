"""Bad input through the real broker: a clear error naming the field, nothing lost, the
partition never stalls, and offsets are committed only once replies are written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from consumer.kafka.admin import committed_offsets
from consumer.kafka.reader import end_offsets
from consumer.kafka.records import InboundRecord
from tests.support.service import (
    KafkaClient,
    RunningService,
    Topics,
    running_service,
    service_settings,
)

pytestmark = pytest.mark.integration

GOOD = {"operation": "get_balance"}
BAD: dict[str, tuple[dict[str, Any] | bytes, str, str]] = {
    # name: (value, param, message)
    "missing": (
        {"operation": "create_customer", "name": "Jenny"},
        "$.email",
        "Object missing required field `email`",
    ),
    "wrong_type": (
        {"operation": "create_payment_intent", "amount": "20", "currency": "usd"},
        "$.amount",
        "Expected `int`, got `str` - at `$.amount`",
    ),
    "out_of_range": (
        {"operation": "list_charges", "limit": 0},
        "$.limit",
        "Expected `int` >= 1 - at `$.limit`",
    ),
    "unknown_field": (
        {"operation": "get_balance", "ammount": 1},
        "$.ammount",
        "Object contains unknown field `ammount`",
    ),
    "unknown_operation": (
        {"operation": "create_token"},
        "$.operation",
        "Unknown `operation`; expected one of: ",
    ),
    "missing_operation": ({"amount": 5}, "$.operation", "Missing `operation`; expected one of: "),
    "cross_field": (
        {"operation": "create_coupon", "id": "X", "amount_off": 5},
        "$.currency",
        "`currency` is required with `amount_off`",
    ),
    "wrong_prefix": (
        {"operation": "get_refund", "refund_id": "ch_1"},
        "$.refund_id",
        "Expected a Stripe refund id (re_…) - at `$.refund_id`",
    ),
    "reply_topic": (
        {"operation": "get_balance", "reply_topic": "ledger"},
        "$.reply_topic",
        "Reply topic 'ledger' is not allowed",
    ),
    "metadata": (
        {"operation": "update_charge", "charge_id": "ch_1", "metadata": {"n": 1}},
        "$.metadata[...]",
        "Expected `str`, got `int` - at `$.metadata[...]`",
    ),
    "not_json": (b"{not json", "$", "The record value is not JSON"),
    "not_object": (b"[1,2,3]", "$", "The record value is JSON but not an object: array"),
    "not_utf8": (b"\xc3\x28", "$", "The record value is not UTF-8"),
}
KEYS = {name: f"{name}-{uuid.uuid4().hex[:6]}" for name in [*BAD, "good-before", "good-after"]}


class Scenario:
    def __init__(
        self,
        client: KafkaClient,
        service: RunningService,
        replies: dict[str, dict[str, Any]],
        dlq: list[InboundRecord],
    ) -> None:
        self.client = client
        self.service = service
        self.replies = replies
        self.dlq = dlq


@pytest_asyncio.fixture(scope="module")
async def scenario(stack: dict[str, str]) -> AsyncIterator[Scenario]:
    """Interleave every kind of bad record with good ones, all with the same key order."""
    topics = Topics()
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client:
        await client.publish(GOOD, key=KEYS["good-before"])
        for name, (value, _, _) in BAD.items():
            await client.publish(value, key=KEYS[name])
        await client.publish(GOOD, key=KEYS["good-after"])
        await client.publish(b"no key, not json", key=None)
        async with running_service(service_settings(stack, topics)) as service:
            replies = await client.replies(len(KEYS), keys=set(KEYS.values()), timeout_s=60)
            dlq = await client.read(topics.dlq, 4)
            yield Scenario(client, service, replies, dlq)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_gets_terminal_validation_error(name: str, scenario: Scenario) -> None:
    """Each kind of bad record: FAILED_WITH_TERMINAL_ERROR, `validation_error`, the field named."""
    _, param, message = BAD[name]
    reply = scenario.replies[KEYS[name]]
    assert reply["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert reply["taskId"] == KEYS[name]
    assert reply["error"]["type"] == "validation_error"
    assert reply["error"]["param"] == param
    assert reply["error"]["message"].startswith(message)
    assert reply["reasonForIncompletion"].startswith(f"validation_error: {message}")
    assert reply["error"]["retryable"] is False


def test_good_requests_around_bad_ones_complete(scenario: Scenario) -> None:
    """The partition never stalls: records after the bad ones are answered."""
    assert scenario.replies[KEYS["good-before"]]["status"] == "COMPLETED"
    assert scenario.replies[KEYS["good-after"]]["status"] == "COMPLETED"


def test_non_objects_go_to_the_dlq_unchanged_with_their_reason(scenario: Scenario) -> None:
    """Not-an-object records land on the DLQ as they were, headers saying where and why."""
    by_key = {r.key.decode() if r.key else None: r for r in scenario.dlq}
    for name, reason in (
        ("not_json", b"not_json"),
        ("not_object", b"not_object"),
        ("not_utf8", b"not_utf8"),
    ):
        record = by_key[KEYS[name]]
        headers = dict(record.headers)
        assert record.value == BAD[name][0]
        assert headers["dlq.reason"] == reason
        assert headers["dlq.source.topic"] == scenario.client.topics.requests.encode()
        assert headers["dlq.source.partition"].isdigit()
        assert headers["dlq.source.offset"].isdigit()
    assert by_key[None].value == b"no key, not json"  # no key: DLQ, and no reply to send


def test_validation_errors_never_reach_stripe(scenario: Scenario) -> None:
    """Only the two good requests called Stripe."""
    calls = scenario.service.registry.get_sample_value(
        "stripe_consumer_stripe_requests_total", {"operation": "get_balance", "outcome": "ok"}
    )
    assert calls == 2


async def test_offsets_are_committed_up_to_the_end(scenario: Scenario) -> None:
    """Everything answered is committed: the group's offsets reach each partition's end."""
    settings = scenario.service.settings
    await scenario.service.shutdown()  # commits on the way out
    connection = scenario.client.connection
    committed = await committed_offsets(connection, settings.group_id)
    ends = await end_offsets(connection, settings.request_topics[0])
    assert sum(ends.values()) == len(KEYS) + 1
    assert {tp: committed.get(tp) for tp in ends} == ends

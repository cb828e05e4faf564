"""A bug in the meter send path (an exception that is not Stripe's answer), injected,
through the real broker: a stream-only bug sends the usage through the v1 endpoint, once;
a bug on every path answers the events failed (a reply, or the DLQ) after bounded retries
instead of retrying them for ever, and on stripe.meter-errors, and the meter topic flows on."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import pytest

from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.transports import SingleEventTransport, StreamTransport
from consumer.settings import Settings, StripeCredential
from tests.support.service import (
    KafkaClient,
    Topics,
    meter_usage,
    running_service,
    service_settings,
)
from tests.support.stack import StandIn, standin_request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def deliveries(standin: StandIn, identifier: str, timeout_s: float = 30) -> int:
    """How often the stand-in counted the identifier, once it has counted it at all."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
        count: int = stats["meter_deliveries"].get(identifier, 0)
        if count:
            return count
        assert time.monotonic() < deadline, f"{identifier} never delivered"
        await asyncio.sleep(0.1)


def settings_for(stack: dict[str, str], standin: StandIn, topics: Topics) -> Settings:
    """Both Stripe hosts (the API and the meter event stream's) are the stand-in."""
    api = {**stack, "STRIPE_API_BASE": standin.url}
    return service_settings(api, topics, STRIPE_METER_EVENTS_BASE=standin.url)


@contextlib.asynccontextmanager
async def meter_service(
    stack: dict[str, str], standin: StandIn
) -> AsyncIterator[tuple[KafkaClient, Any, Topics, str]]:
    """A reset stand-in, fresh topics, a client and the service: (client, service, topics,
    a run id for unique identifiers)."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    topics, run = Topics(), uuid.uuid4().hex[:8]
    settings = settings_for(stack, standin, topics)
    async with (
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client,
        running_service(settings) as service,
    ):
        yield client, service, topics, run


def sample(service: Any, name: str, **labels: str) -> float:
    return float(service.registry.get_sample_value(name, labels) or 0)


async def test_a_bug_on_the_stream_path_sends_the_usage_through_v1_once(
    stack: dict[str, str], standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the stream's request body raises (a bug): after the account's third such
    failure the batch goes through the v1 endpoint, and the event counts once."""

    def broken(self: MeterEvent) -> dict[str, Any]:
        raise RuntimeError("a bug in the stream's body")

    monkeypatch.setattr(MeterEvent, "stream_body", broken)
    async with meter_service(stack, standin) as (client, service, topics, run):
        task = f"task-{run}"
        await client.publish(meter_usage(f"v1-{run}", taskId=task), key=task, topic=topics.meter)
        [reply] = await client.read(topics.replies, 1, keys={task}, timeout_s=60)
        assert await deliveries(standin, f"v1-{run}") == 1
        assert sample(service, "stripe_consumer_meter_events_total", api="v1") == 1
        assert sample(service, "stripe_consumer_meter_events_total", api="v2_stream") == 0
    assert reply.value is not None
    assert msgspec.json.decode(reply.value)["status"] == "COMPLETED"


async def test_a_bug_on_every_path_is_answered_failed_after_bounded_retries(
    stack: dict[str, str], standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every send raises (a bug on both endpoints): a meter event with a taskId is answered
    FAILED_WITH_TERMINAL_ERROR and a quiet one is dead-lettered (`refused`) after the
    bounded retries, both are on stripe.meter-errors with their reason, nothing reaches
    Stripe, both are counted `failed`; once the bug is
    gone the next event on the meter topic is delivered once."""
    bug = {"on": True}
    originals = {cls: cls.send for cls in (StreamTransport, SingleEventTransport)}

    def sending(cls: type[StreamTransport] | type[SingleEventTransport]) -> Any:
        async def send(
            self: Any,
            scope: LedgerScope,
            credential: StripeCredential,
            events: Sequence[MeterEvent],
        ) -> list[MeterResult]:
            if bug["on"]:
                raise RuntimeError("a bug in the send path")
            return await originals[cls](self, scope, credential, events)

        return send

    for cls in originals:
        monkeypatch.setattr(cls, "send", sending(cls))
    async with meter_service(stack, standin) as (client, service, topics, run):
        task = f"task-{run}"
        await client.publish(
            meter_usage(f"answered-{run}", taskId=task), key=task, topic=topics.meter
        )
        await client.publish(meter_usage(f"quiet-{run}"), key=f"quiet-{run}", topic=topics.meter)
        [reply] = await client.read(topics.replies, 1, keys={task}, timeout_s=60)
        [dead] = await client.read(topics.dlq, 1, keys={f"quiet-{run}"}, timeout_s=60)
        ids = {f"answered-{run}", f"quiet-{run}"}
        errors = await client.read(topics.meter_errors, 2, keys=ids, timeout_s=60)
        failed = sample(service, "stripe_consumer_meter_send_errors_total", outcome="failed")
        bug["on"] = False
        await client.publish(meter_usage(f"later-{run}"), key=f"later-{run}", topic=topics.meter)
        assert await deliveries(standin, f"later-{run}") == 1
        stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    assert reply.value is not None
    answered = msgspec.json.decode(reply.value)
    assert answered["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert answered["error"]["retryable"] is False
    assert "internal error" in answered["error"]["message"]
    assert dict(dead.headers)["dlq.reason"] == b"refused"
    assert failed == 2
    # Usage that did not count is on stripe.meter-errors too, with its reason (the contract).
    records = {r.key or b"": msgspec.json.decode(r.value or b"") for r in errors}
    assert set(records) == {i.encode() for i in ids}
    for identifier, record in records.items():
        assert record["identifier"] == identifier.decode()
        assert record["code"] == "api_error"
        assert "internal error" in record["message"]
        assert (record["stripe_event_id"], record["event_name"]) == (None, "api_requests")
    assert f"answered-{run}" not in stats["meter_deliveries"]
    assert f"quiet-{run}" not in stats["meter_deliveries"]

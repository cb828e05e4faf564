"""A request the HTTP client cannot send (it refuses a header value, say: the SDK reports
that as a connection error) fails the same way on every retry. Through the real broker:
such meter events go where failed usage goes (a reply, or the DLQ) instead of being retried
for ever and stalling their partition, and the meter topic flows on."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping

import msgspec
import pytest

from consumer.stripe.http_pool import HttpPool
from tests.support.service import (
    KafkaClient,
    Topics,
    meter_usage,
    running_service,
    service_settings,
)
from tests.support.stack import StandIn, standin_request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def refused_meter_headers(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """While on, the meter endpoints' requests reach the HTTP pool with a header value
    holding a line feed, which the pool refuses to send (header injection)."""
    state = {"on": True}
    original = HttpPool.request

    async def request(
        self: HttpPool, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        if state["on"] and "/billing/meter_event" in url:
            headers = {**headers, "X-Probe": "a\nb"}
        return await original(self, method, url, headers, body)

    monkeypatch.setattr(HttpPool, "request", request)
    return state


async def test_unsendable_meter_events_are_answered_or_dead_lettered_not_retried_for_ever(
    stack: dict[str, str], standin: StandIn, refused_meter_headers: dict[str, bool]
) -> None:
    """A meter event with a taskId is answered FAILED_WITH_TERMINAL_ERROR, a quiet one is
    dead-lettered (`refused`), both within seconds; once sending works, the next event on the
    meter topic is delivered."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    topics = Topics()
    run = uuid.uuid4().hex[:8]
    api = {**stack, "STRIPE_API_BASE": standin.url}  # and the meter event stream's host:
    settings = service_settings(api, topics, STRIPE_METER_EVENTS_BASE=standin.url)
    async with (
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client,
        running_service(settings),
    ):
        task = f"task-{run}"
        await client.publish(
            meter_usage(f"answered-{run}", taskId=task), key=task, topic=topics.meter
        )
        await client.publish(meter_usage(f"quiet-{run}"), key=f"quiet-{run}", topic=topics.meter)
        [reply] = await client.read(topics.replies, 1, keys={task}, timeout_s=30)
        [dead] = await client.read(topics.dlq, 1, keys={f"quiet-{run}"}, timeout_s=30)
        refused_meter_headers["on"] = False
        await client.publish(meter_usage(f"later-{run}"), key=f"later-{run}", topic=topics.meter)
        deadline = time.monotonic() + 30
        while True:
            stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
            if f"later-{run}" in stats["meter_deliveries"]:
                break
            assert time.monotonic() < deadline, "the meter topic did not flow on"
            await asyncio.sleep(0.1)
    assert reply.value is not None
    answered = msgspec.json.decode(reply.value)
    assert answered["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert answered["error"]["type"] == "api_connection_error"
    assert answered["error"]["retryable"] is False
    assert dict(dead.headers)["dlq.reason"] == b"refused"
    assert f"answered-{run}" not in stats["meter_deliveries"]
    assert f"quiet-{run}" not in stats["meter_deliveries"]

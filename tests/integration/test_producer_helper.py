"""The producer helper through the real broker: the README's example runs as written and
puts every event on the meter topic keyed by its identifier; typed requests reach the
service and are answered."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from consumer.contract.requests import CreateCustomer, CreateMeterEvent
from consumer.kafka.reader import read_to_end
from consumer.producer import MeterEventProducer, RequestProducer
from tests.support.service import KafkaClient, Topics, running_service, service_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_MARKER = "<!-- producer-example (a test runs this block as written) -->"


def readme_example() -> str:
    """The Python block right after the README's marker, as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme[readme.index(EXAMPLE_MARKER) + len(EXAMPLE_MARKER) :]
    match = re.match(r"\s*```python\n(?P<code>.*?)\n```", after, re.S)
    assert match is not None, "no ```python block after the marker"
    return match["code"]


async def test_readme_example_runs_as_written(stack: dict[str, str]) -> None:
    """The example's 1,000 events arrive on the meter topic, each keyed by its identifier,
    each one a valid create_meter_event; the block is at most 20 lines."""
    code = readme_example()
    assert len(code.splitlines()) <= 20
    topics = Topics()
    environ = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": stack["KAFKA_BOOTSTRAP_SERVERS"],
        **topics.environ(),
    }
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", code],
            env=environ,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        records = await read_to_end(client.connection, topics.meter)
    assert len(records) == 1_000
    events = [msgspec.json.decode(r.value or b"", type=CreateMeterEvent) for r in records]
    assert {r.key for r in records} == {f"req-2026-12-04-{n}".encode() for n in range(1_000)}
    assert all(r.key == str(e.identifier).encode() for r, e in zip(records, events, strict=True))
    assert {e.event_name for e in events} == {"api_requests"}


async def test_typed_requests_and_meter_events_reach_the_service(stack: dict[str, str]) -> None:
    """A CreateCustomer sent with a key is answered COMPLETED with that taskId; meter events
    sent with replies on are answered once per identifier."""
    topics = Topics()
    environ = {"KAFKA_BOOTSTRAP_SERVERS": stack["KAFKA_BOOTSTRAP_SERVERS"], **topics.environ()}
    settings = service_settings(stack, topics, CONSUMER_METER_REPLIES="true")
    async with (
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client,
        running_service(settings),
    ):
        async with RequestProducer.from_environment(environ) as requests:
            await requests.send(
                CreateCustomer(name="Jenny Rosen", email="jenny@example.com"), key="order-42"
            )
        async with MeterEventProducer.from_environment(environ) as meter:
            for n in range(5):
                await meter.send(
                    event_name="api_requests", customer_id="cus_1", identifier=f"m-{n}"
                )
        replies = await client.replies(6, keys={"order-42", *(f"m-{n}" for n in range(5))})
    assert replies["order-42"]["status"] == "COMPLETED"
    assert replies["order-42"]["operation"] == "create_customer"
    assert {replies[f"m-{n}"]["status"] for n in range(5)} == {"COMPLETED"}

"""Running the service in the test's event loop, on its own topics, and talking to it through
Kafka only (as producers and Conductor do)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from consumer.app import run_service
from consumer.kafka.admin import ensure_topics
from consumer.kafka.connection import KafkaConnection
from consumer.kafka.producer import RecordSink
from consumer.kafka.reader import topic_reader
from consumer.kafka.records import InboundRecord, OutboundRecord
from consumer.settings import Settings, load_settings


@dataclass
class Topics:
    """A private set of topics (and group) per test module, so tests never see each other."""

    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")

    @property
    def requests(self) -> str:
        return f"{self.prefix}.requests"

    @property
    def meter(self) -> str:
        return f"{self.prefix}.meter-events"

    @property
    def replies(self) -> str:
        return f"{self.prefix}.replies"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def meter_errors(self) -> str:
        return f"{self.prefix}.meter-errors"

    def environ(self) -> dict[str, str]:
        return {
            "CONSUMER_REQUEST_TOPICS": self.requests,
            "CONSUMER_METER_TOPIC": self.meter,
            "CONSUMER_REPLY_TOPIC": self.replies,
            "CONSUMER_DLQ_TOPIC": self.dlq,
            "CONSUMER_METER_ERRORS_TOPIC": self.meter_errors,
            "CONSUMER_GROUP_ID": f"{self.prefix}.group",
            "CONSUMER_TOPIC_PARTITIONS": "3",
        }


def service_settings(stack: Mapping[str, str], topics: Topics, **overrides: str) -> Settings:
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": stack["KAFKA_BOOTSTRAP_SERVERS"],
        "STRIPE_API_BASE": stack["STRIPE_API_BASE"],
        "STRIPE_API_KEY": "sk_test_123",
        "CONSUMER_HTTP_PORT": "0",
        "CONSUMER_COMMIT_INTERVAL_SECONDS": "0.2",
        "CONSUMER_METER_ERRORS_POLL_SECONDS": "0",  # no GETs in call counts (verdict tests: on)
        "LOG_LEVEL": "WARNING",
        **topics.environ(),
        **overrides,
    }
    return load_settings(environ)


@dataclass
class RunningService:
    settings: Settings
    registry: CollectorRegistry
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 60)


@contextlib.asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[RunningService]:
    registry = CollectorRegistry()
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(settings, stop, registry))
    service = RunningService(settings, registry, stop, task)
    try:
        yield service
    finally:
        if not task.done():
            await service.shutdown()
        elif task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class KafkaClient:
    """Publishes requests and reads replies/DLQ records of one set of topics."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.connection = KafkaConnection(bootstrap, client_id="tests")
        self.topics = topics
        self._sink = RecordSink(self.connection, linger_ms=0)

    async def __aenter__(self) -> KafkaClient:
        await ensure_topics(
            self.connection,
            {
                self.topics.requests: 3,
                self.topics.meter: 3,
                self.topics.replies: 3,
                self.topics.dlq: 1,
                self.topics.meter_errors: 1,
                f"{self.topics.replies}.billing": 1,
            },
        )
        await self._sink.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._sink.stop()

    async def publish(
        self, value: dict[str, Any] | bytes, *, key: str | bytes | None, topic: str | None = None
    ) -> None:
        raw = value if isinstance(value, bytes) else msgspec.json.encode(value)
        encoded_key = key.encode() if isinstance(key, str) else key
        await self._sink.send(OutboundRecord(topic or self.topics.requests, encoded_key, raw))

    async def read(
        self,
        topic: str,
        count: int,
        *,
        timeout_s: float = 30.0,
        keys: set[str] | None = None,
        per_key: int = 1,
    ) -> list[InboundRecord]:
        """All records of the topic from the beginning, once ``count`` have arrived (with
        ``keys``: once ``count`` distinct keys of that set have, each at least ``per_key``
        times)."""

        def matching(records: list[InboundRecord]) -> list[InboundRecord]:
            if keys is None:
                return records
            return [r for r in records if r.key is not None and r.key.decode() in keys]

        def enough(records: list[InboundRecord]) -> bool:
            found = matching(records)
            if keys is None:
                return len(found) >= count
            seen = Counter(r.key for r in found)
            return sum(1 for n in seen.values() if n >= per_key) >= count

        async with topic_reader(self.connection, topic) as reader:
            records = await reader.collect(enough, timeout_s=timeout_s)
        return matching(records)

    async def replies(self, count: int, **kwargs: Any) -> dict[str, dict[str, Any]]:
        """Replies by record key (the last one per key)."""
        records = await self.read(self.topics.replies, count, **kwargs)
        return {r.key.decode(): msgspec.json.decode(r.value) for r in records if r.key and r.value}


def meter_usage(identifier: str, **extra: Any) -> dict[str, Any]:
    """A create_meter_event request for ``cus_1`` on the ``api_requests`` meter."""
    return {
        "operation": "create_meter_event",
        "event_name": "api_requests",
        "customer_id": "cus_1",
        "identifier": identifier,
        **extra,
    }

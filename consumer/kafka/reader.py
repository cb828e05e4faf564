"""Reading a topic without a group (the demo, ``send``, the tests), and its end offsets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiokafka

from consumer.kafka.connection import KafkaConnection
from consumer.kafka.consumer import to_inbound
from consumer.kafka.records import DeliveryFailed, InboundRecord, TopicPartition


async def end_offsets(connection: KafkaConnection, topic: str) -> dict[TopicPartition, int]:
    """Each partition's end offset (the offset the next record will get)."""
    consumer = aiokafka.AIOKafkaConsumer(**connection.client_options())
    await consumer.start()
    try:
        partitions = [
            aiokafka.TopicPartition(topic, p) for p in await _partitions_of(consumer, topic)
        ]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {TopicPartition(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}


@contextlib.asynccontextmanager
async def topic_reader(
    connection: KafkaConnection, topic: str, *, from_end: bool = False
) -> AsyncIterator[TopicReader]:
    """Read every partition of a topic without a group (tests, the demo, ``send``)."""
    consumer = aiokafka.AIOKafkaConsumer(
        enable_auto_commit=False,
        auto_offset_reset="latest" if from_end else "earliest",
        **connection.client_options(),
    )
    await consumer.start()
    try:
        partitions = await _partitions_of(consumer, topic)
        consumer.assign([aiokafka.TopicPartition(topic, p) for p in partitions])
        if from_end:
            await consumer.seek_to_end()
        else:
            await consumer.seek_to_beginning()
        yield TopicReader(consumer)
    finally:
        await consumer.stop()


async def _partitions_of(consumer: Any, topic: str) -> list[int]:
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        await consumer._client.force_metadata_update()  # no public way to refresh metadata
        await asyncio.sleep(0.1)
    raise DeliveryFailed(f"topic {topic} has no partitions", retriable=True)


async def read_to_end(
    connection: KafkaConnection, topic: str, *, timeout_s: float = 60.0
) -> list[InboundRecord]:
    """Every record the topic holds now, from the beginning to the end offsets taken when
    the reading starts (records arriving meanwhile are left for the next read)."""
    async with topic_reader(connection, topic) as reader:
        return await reader.read_to_current_end(timeout_s=timeout_s)


class TopicReader:
    """Records of one topic, in arrival order per partition."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    async def read_to_current_end(self, *, timeout_s: float) -> list[InboundRecord]:
        """Read until every partition's position reaches its end offset as of now."""
        partitions = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(partitions)
        collected: list[InboundRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            if loop.time() > deadline:
                raise TimeoutError(f"only {len(collected)} records arrived in {timeout_s}s")
            batches = await self._consumer.getmany(*pending, timeout_ms=200)
            for tp, records in batches.items():
                collected.extend(to_inbound(r) for r in records if r.offset < ends[tp])
            pending = {tp for tp in pending if await self._consumer.position(tp) < ends[tp]}
        return collected

    async def read(self, timeout_s: float = 0.5) -> list[InboundRecord]:
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        return [to_inbound(r) for records in batches.values() for r in records]

    async def collect(
        self,
        until: Callable[[list[InboundRecord]], bool],
        *,
        timeout_s: float,
    ) -> list[InboundRecord]:
        """Read until ``until(all records so far)`` holds; raise TimeoutError otherwise."""
        collected: list[InboundRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not until(collected):
            if loop.time() > deadline:
                raise TimeoutError(f"only {len(collected)} records arrived in {timeout_s}s")
            collected.extend(await self.read(timeout_s=0.2))
        return collected

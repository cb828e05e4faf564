"""The producer: :class:`RecordSink` sends replies and dead letters, idempotent with
``acks=all``. ``send`` resolves when the broker has the record, or raises DeliveryFailed.
``send_soon`` is the hot path's way: the record joins one batch per topic-partition and
loop turn, and one callback per batch tells every record's owner that Kafka has it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import aiokafka
from aiokafka.errors import KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError
from aiokafka.partitioner import DefaultPartitioner

from consumer.kafka.connection import KafkaConnection
from consumer.kafka.partitions import key_partition
from consumer.kafka.records import DeliveryFailed, OutboundRecord
from consumer.kafka.startup import classify, stop_quietly

_MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024
# Replies are a few KiB (the Stripe object): with aiokafka's 16 KiB default a batch fills
# after a handful and every further send waits for the drain.
_MAX_BATCH_BYTES: Final = 1024 * 1024
# Larger records skip the batches of ``send_soon`` (``send`` learns their own fate: too large
# for the broker, say): a batch's failure is every one of its records'.
_BATCHED_RECORD_BYTES: Final = 256 * 1024

# Called once per record given to ``send_soon``: None when the broker has it, else its
# batch's failure (send it again alone with ``send`` to learn its own).
Acknowledged = Callable[[DeliveryFailed | None], None]
_log = logging.getLogger("stripe_consumer")


class RecordSink:
    """An idempotent producer (``acks=all``): ``send`` returns when the broker has the record."""

    def __init__(self, connection: KafkaConnection, *, linger_ms: int = 0) -> None:
        """``linger_ms=0``: aiokafka keeps one produce request in flight per broker, so
        replies batch up naturally while it is out; lingering only added latency (measured:
        the reply's wait for its acknowledgement, p50 7.5 ms with 5 ms linger, 3 ms without)."""
        self._connection = connection
        self._denied: set[str] = set()  # topics the broker refuses us Write on, until it takes one
        self._producer = aiokafka.AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            max_batch_size=_MAX_BATCH_BYTES,
            max_request_size=_MAX_REQUEST_BYTES,
            request_timeout_ms=30_000,
            **connection.client_options(),
        )
        self._partitioner = DefaultPartitioner()  # aiokafka's own, for keyless records
        self._outbox: dict[tuple[str, int], list[tuple[OutboundRecord, Acknowledged]]] = {}
        self._flushing: asyncio.Task[None] | None = None
        self._turn_partitions: dict[str, list[int]] = {}  # sorted, while queueing a round

    async def start(self) -> None:
        """Connect; a refusal raises ConfigurationProblem, with the producer closed."""
        try:
            await self._producer.start()
        except (KafkaError, OSError) as exc:
            await stop_quietly(self._producer)
            raise classify(exc, self._connection) from None

    async def stop(self) -> None:
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self._producer.stop()

    async def send(self, record: OutboundRecord) -> None:
        """Send and wait for the broker's acknowledgement; raise DeliveryFailed."""
        try:
            ack = await self._producer.send(
                record.topic, record.value, key=record.key, headers=list(record.headers)
            )
            await ack
        except Exception as exc:
            raise self._failure(exc, record.topic) from None
        self._denied.discard(record.topic)

    def send_soon(self, record: OutboundRecord, acknowledged: Acknowledged) -> bool:
        """Queue the record for this loop turn's batch of its topic-partition (the partition
        ``send`` would choose: aiokafka's partitioner); the batch's one callback calls
        ``acknowledged`` for each of its records. False (nothing queued) for a record too
        large to share a batch, or a topic whose partitions are not known yet: ``send`` it."""
        if len(record.value) + len(record.key or b"") > _BATCHED_RECORD_BYTES:
            return False
        partitions = self._turn_partitions.get(record.topic)
        if partitions is None:  # once per topic and turn: the metadata's sets are copies
            known = self._producer.client.cluster.partitions_for_topic(record.topic)
            if not known:
                return False
            partitions = self._turn_partitions[record.topic] = sorted(known)
        partition = (
            key_partition(record.key, partitions)
            if record.key is not None
            else self._keyless_partition(record.topic, partitions)
        )
        queued = self._outbox.get((record.topic, partition))
        if queued is None:
            self._outbox[(record.topic, partition)] = [(record, acknowledged)]
        else:
            queued.append((record, acknowledged))
        if self._flushing is None:  # its first step runs after this turn's other replies
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        return True

    def _keyless_partition(self, topic: str, partitions: list[int]) -> int:
        """As aiokafka's partitioner: any available partition, else any."""
        available = self._producer.client.cluster.available_partitions_for_topic(topic)
        return int(self._partitioner(None, partitions, sorted(available or ())))

    async def _flush(self) -> None:
        """While records are queued: one batch per topic-partition, handed to aiokafka in
        queue order (it waits while the partition's previous batch is not yet drained;
        records queued meanwhile go in the next round)."""
        try:
            while self._outbox:
                queued, self._outbox = self._outbox, {}
                self._turn_partitions.clear()
                for (topic, partition), group in queued.items():
                    await self._send_batches(topic, partition, group)
        finally:
            self._flushing = None

    async def _send_batches(
        self, topic: str, partition: int, group: list[tuple[OutboundRecord, Acknowledged]]
    ) -> None:
        builder = self._producer.create_batch()
        members: list[Acknowledged] = []
        for record, acknowledged in group:
            if not _append(builder, record):  # full: this one starts the next batch
                await self._submit(builder, topic, partition, members)
                builder, members = self._producer.create_batch(), []
                _append(builder, record)  # a batch always takes its first record
            members.append(acknowledged)
        await self._submit(builder, topic, partition, members)

    async def _submit(
        self, builder: Any, topic: str, partition: int, members: list[Acknowledged]
    ) -> None:
        try:
            delivery = await self._producer.send_batch(builder, topic, partition=partition)
        except Exception as exc:  # the accumulator closed, or no room within the timeout
            _tell(members, self._failure(exc, topic))
            return

        def acknowledged(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                failure: DeliveryFailed | None = DeliveryFailed("cancelled", retriable=True)
            else:
                exc = done.exception()
                failure = None if exc is None else self._failure(exc, topic)
            if failure is None:
                self._denied.discard(topic)
            _tell(members, failure)

        delivery.add_done_callback(acknowledged)

    def _failure(self, exc: BaseException, topic: str) -> DeliveryFailed:
        """Kafka's refusal as DeliveryFailed (retriable or not)."""
        if isinstance(exc, DeliveryFailed):
            return exc
        if isinstance(exc, TopicAuthorizationFailedError):
            self._denied.add(topic)
            return DeliveryFailed(
                f"the broker denies Write on topic {topic} to this principal: grant the "
                "ACL (README, 'Kafka security')",
                retriable=True,  # the record waits, uncommitted, until the ACL is granted
            )
        if isinstance(exc, KafkaTimeoutError):
            return DeliveryFailed(f"{type(exc).__name__}: {exc}", retriable=True)
        if isinstance(exc, KafkaError):
            return DeliveryFailed(f"{type(exc).__name__}: {exc}", retriable=bool(exc.retriable))
        # Not Kafka's answer: send again rather than strand the offset.
        return DeliveryFailed(f"{type(exc).__name__}: {exc}", retriable=True)

    def denied_topics(self) -> set[str]:
        """Topics whose last send the broker refused for want of a Write ACL (readiness)."""
        return set(self._denied)


def _append(builder: Any, record: OutboundRecord) -> bool:
    metadata = builder.append(
        timestamp=None, key=record.key, value=record.value, headers=list(record.headers)
    )
    return metadata is not None


def _tell(members: list[Acknowledged], failure: DeliveryFailed | None) -> None:
    """Call every record's owner; one that raises does not keep the others uninformed."""
    for acknowledged in members:
        try:
            acknowledged(failure)
        except Exception:
            _log.exception("a delivery callback raised")

"""The producer for volume (:class:`BatchingSink`): records are batched (``linger_ms``),
compressed and sent idempotently with ``acks=all``; ``enqueue`` returns once the record is
in a batch, ``flush`` once Kafka has every one, or raises the first delivery failure."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import aiokafka
from aiokafka.errors import KafkaError

from consumer.kafka.connection import KafkaConnection
from consumer.kafka.records import DeliveryFailed, OutboundRecord

DEFAULT_LINGER_MS: Final = 20
DEFAULT_COMPRESSION: Final = "gzip"  # in the standard library: no codec package to install
_BATCH_BYTES: Final = 256 * 1024


class BatchingSink:
    """An idempotent producer tuned for many small records (meter events)."""

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        linger_ms: int = DEFAULT_LINGER_MS,
        compression_type: str | None = DEFAULT_COMPRESSION,
    ) -> None:
        self._producer = aiokafka.AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,  # a retried batch is written once, in order
            linger_ms=linger_ms,
            compression_type=compression_type,
            max_batch_size=_BATCH_BYTES,
            request_timeout_ms=30_000,
            **connection.client_options(),
        )
        self._pending: set[asyncio.Future[Any]] = set()
        self._failure: DeliveryFailed | None = None

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def enqueue(self, record: OutboundRecord) -> None:
        """Add the record to a batch (waits only while the buffer is full); a delivery
        failure of any earlier record is raised here or by ``flush``."""
        self._raise_failure()
        try:
            delivery = await self._producer.send(
                record.topic, record.value, key=record.key, headers=list(record.headers)
            )
        except KafkaError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}", retriable=exc.retriable) from None
        self._pending.add(delivery)
        delivery.add_done_callback(self._delivered)

    def _delivered(self, delivery: asyncio.Future[Any]) -> None:
        self._pending.discard(delivery)
        if delivery.cancelled() or self._failure is not None:
            return
        exc = delivery.exception()
        if exc is not None:
            retriable = bool(getattr(exc, "retriable", False))
            self._failure = DeliveryFailed(f"{type(exc).__name__}: {exc}", retriable=retriable)

    async def flush(self) -> None:
        """Wait until Kafka has every record enqueued so far; raise the first failure."""
        await self._producer.flush()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

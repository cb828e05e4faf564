"""Producers for Python callers: :class:`MeterEventProducer` (meter events at volume, keyed
by identifier) and :class:`RequestProducer` (any operation request), both async context
managers that leave only when Kafka has every record."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import Self

from msgspec import UNSET

from consumer.contract.requests import CreateMeterEvent, FieldError, OperationRequest, is_given
from consumer.kafka.batching import DEFAULT_COMPRESSION, DEFAULT_LINGER_MS, BatchingSink
from consumer.kafka.connection import KafkaConnection
from consumer.kafka.records import OutboundRecord
from consumer.producer.builders import encode_request
from consumer.settings import ClientSettings, KafkaSecurity, load_client_settings


class _Producer:
    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        security: KafkaSecurity | None = None,
        linger_ms: int = DEFAULT_LINGER_MS,
        compression_type: str | None = DEFAULT_COMPRESSION,
        client_id: str = "stripe-consumer-producer",
    ) -> None:
        self._connection = KafkaConnection(
            bootstrap_servers, security or KafkaSecurity(), client_id
        )
        self._linger_ms = linger_ms
        self._compression_type = compression_type
        self.topic = topic
        self._sink: BatchingSink | None = None

    async def __aenter__(self) -> Self:
        """Connect (the Kafka producer is made here, on the running event loop)."""
        sink = BatchingSink(
            self._connection, linger_ms=self._linger_ms, compression_type=self._compression_type
        )
        try:
            await sink.start()
        except BaseException:
            await sink.stop()
            raise
        self._sink = sink
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Wait until Kafka has every record (not after an error), then disconnect."""
        sink, self._sink = self._running(), None
        try:
            if exc_type is None:
                await sink.flush()
        finally:
            await sink.stop()

    async def flush(self) -> None:
        """Wait until Kafka has every record sent so far (DeliveryFailed otherwise)."""
        await self._running().flush()

    async def _send(self, key: bytes | None, value: bytes) -> None:
        await self._running().enqueue(OutboundRecord(self.topic, key, value))

    def _running(self) -> BatchingSink:
        if self._sink is None:
            raise RuntimeError(f"use `async with {type(self).__name__}(...)` to send")
        return self._sink


class RequestProducer(_Producer):
    """Publishes operation requests (any of the contract's Structs) to a request topic."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RequestProducer:
        """Kafka and the first request topic from the service's variables."""
        settings = _client_settings(environ)
        return cls(
            settings.kafka_bootstrap_servers,
            settings.request_topics[0],
            security=settings.kafka_security,
        )

    async def send(self, request: OperationRequest, *, key: str | None = None) -> None:
        """Check the request as the service will (FieldError naming the field) and send it.
        ``key``: the reply carries it as taskId; records with one key are done in order."""
        value = encode_request(request)
        await self._send(key.encode() if key is not None else None, value)


class MeterEventProducer(_Producer):
    """Publishes meter events to the meter topic, keyed by their identifier (every event of
    one identifier in one partition, so a duplicate meets its original in order)."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> MeterEventProducer:
        """Kafka and ``CONSUMER_METER_TOPIC`` from the service's variables."""
        settings = _client_settings(environ)
        return cls(
            settings.kafka_bootstrap_servers, settings.meter_topic, security=settings.kafka_security
        )

    async def send(
        self,
        *,
        event_name: str,
        customer_id: str,
        identifier: str,
        value: int | float | str = 1,
        timestamp: int | None = None,
        integration: str = "default",
        stripe_account: str | None = None,
    ) -> None:
        """One meter event. ``identifier`` is required: Stripe counts each one once, and a
        producer's retry must repeat it (the service derives none for you here)."""
        event = CreateMeterEvent(
            event_name=event_name,
            customer_id=customer_id,
            identifier=identifier,
            value=value,
            timestamp=UNSET if timestamp is None else timestamp,
            integration=integration,
            stripe_account=UNSET if stripe_account is None else stripe_account,
        )
        await self.send_event(event)

    async def send_event(self, event: CreateMeterEvent) -> None:
        """A meter event built by the caller; its identifier must be given."""
        if not is_given(event.identifier) or not isinstance(event.identifier, str):
            raise FieldError("$.identifier", "A meter event producer must give an identifier")
        value = encode_request(event)
        await self._send(event.identifier.encode(), value)


def _client_settings(environ: Mapping[str, str] | None) -> ClientSettings:
    return load_client_settings(os.environ if environ is None else environ)

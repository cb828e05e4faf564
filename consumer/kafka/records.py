"""Kafka records as plain structs: what the rest of the service sees of Kafka (no aiokafka)."""

from __future__ import annotations

from typing import NamedTuple

import msgspec

Headers = tuple[tuple[str, bytes], ...]


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class InboundRecord(msgspec.Struct, frozen=True):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class OutboundRecord(msgspec.Struct, frozen=True):
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


class DeliveryFailed(Exception):
    """The broker did not take a record. ``retriable`` says whether sending again may work."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable

"""What the pipeline is given: its limits, and the parts it drives, as protocols (Kafka's
source and sink, the processor, the meter batcher, the failure memory; fakes in unit
tests). And the timing each record carries for its log line."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

import msgspec

from consumer.engine.processing.answer import Handled
from consumer.engine.processing.prepare import Prepared, PreparedMeterEvent
from consumer.engine.processing.processor import HeldRequest
from consumer.engine.replies import Outcome
from consumer.engine.reply_memory import MemorySlot
from consumer.kafka.records import DeliveryFailed, InboundRecord, OutboundRecord, TopicPartition
from consumer.metering.events import MeterEvent, MeterResult


@dataclass(frozen=True, slots=True)
class PipelineLimits:
    max_in_flight: int = 256
    max_buffered: int = 2048
    max_buffered_meter_events: int = 20_000
    fetch_max_records: int = 500
    commit_interval_seconds: float = 1.0
    revoke_timeout_seconds: float = 10.0
    shutdown_grace_seconds: float = 25.0
    custom_reply_topic_timeout_seconds: float = 30.0
    credential_hold_seconds: float = 900.0


class Timing(msgspec.Struct, gc=False):
    """When a record was fetched, started, processed: the log line's breakdown."""

    received: float
    started: float = 0.0
    processed: float = 0.0
    held_since: float | None = None  # first held for a rejected key (the hold counts from it)


class Source(Protocol):
    async def fetch(self, timeout_s: float, max_records: int) -> list[InboundRecord]: ...
    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...
    def pause(self, partitions: set[TopicPartition]) -> None: ...
    def resume(self, partitions: set[TopicPartition]) -> None: ...
    def highwater(self, tp: TopicPartition) -> int | None: ...


class Sink(Protocol):
    async def send(self, record: OutboundRecord) -> None: ...

    def send_soon(
        self, record: OutboundRecord, acknowledged: Callable[[DeliveryFailed | None], None]
    ) -> bool:
        """Queue for a batch; ``acknowledged`` once Kafka has it (None) or its batch failed.
        False when not queued (then ``send`` it)."""
        ...


class Processor(Protocol):
    async def process(self, record: InboundRecord) -> Handled | HeldRequest: ...
    def prepare_meter_event(self, record: InboundRecord) -> PreparedMeterEvent | None: ...
    def answer(self, record: InboundRecord, prepared: Prepared, outcome: Outcome) -> Handled: ...
    async def remembered(self, record: InboundRecord, prepared: Prepared) -> Handled | None: ...
    def written_objects(self, record: InboundRecord) -> tuple[Hashable, ...]: ...


class FailureMemory(Protocol):
    """Remembers a failure reply by taskId as it is sent (engine/reply_memory.py)."""

    async def remember_failure(self, slot: MemorySlot, outcome: Outcome) -> None: ...


class MeterBatcher(Protocol):
    def submit(
        self, event: MeterEvent, on_result: Callable[[MeterResult], None], owner: object
    ) -> None: ...
    def withdraw(self, unwanted: Callable[[object], bool]) -> list[object]: ...

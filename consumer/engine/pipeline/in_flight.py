"""The records this consumer took and has not answered yet, wherever they are: queued or
running in the per-key scheduler, in a meter batch, or held for a rejected key. What a
revoke, the shutdown drain and back-pressure ask of them: how many, which are unanswered,
and taking back what has not started."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Generic, TypeVar

from consumer.engine.offsets import OffsetTracker
from consumer.engine.pipeline.held_requests import HeldRequests
from consumer.engine.pipeline.ports import MeterBatcher
from consumer.engine.scheduler import KeyedScheduler
from consumer.kafka.records import InboundRecord, TopicPartition

T = TypeVar("T")


class InFlight(Generic[T]):
    def __init__(
        self,
        offsets: OffsetTracker,
        scheduler: KeyedScheduler,
        held: HeldRequests[T],
        meter_batcher: MeterBatcher | None,
    ) -> None:
        self.offsets = offsets
        self.scheduler = scheduler
        self.held = held
        self._meter_batcher = meter_batcher
        self.metered = 0  # meter events in batches, not yet answered
        self.delivering = 0  # replies in the sink's batches, not yet acknowledged
        self._progress = asyncio.Event()  # set whenever a record is answered

    @property
    def count(self) -> int:
        return self.scheduler.queued + self.metered + self.delivering + len(self.held)

    def answered(self, record: InboundRecord) -> None:
        """Its reply (if any) is acknowledged: the offset may be committed."""
        self.offsets.done(record.topic_partition, record.offset)
        self._progress.set()

    def abandoned(self, record: InboundRecord) -> None:
        """It will not be answered here: not waited for, never committed from here."""
        self.offsets.abandon(record.topic_partition, record.offset)
        self._progress.set()

    def unanswered(self, partitions: set[TopicPartition] | None) -> int:
        """Records being worked on: tracked, not answered, not held for a rejected key (those
        wait for the key, not for this consumer; they stay uncommitted)."""
        return self.offsets.pending(partitions) - self.held.count(partitions)

    async def wait_started(self, partitions: set[TopicPartition] | None, timeout_s: float) -> int:
        """Withdraw the work of these partitions (None: all) that has not started, then wait
        until the started work is answered, or the timeout. Returns how much was withdrawn."""
        deadline = time.monotonic() + timeout_s
        withdrawn = 0
        while True:
            # Again on every round: a meter batch that failed transiently goes back to wait
            # for its retry, and is then no longer started.
            withdrawn += self._withdraw_unstarted(partitions)
            remaining = deadline - time.monotonic()
            if not self.unanswered(partitions) or remaining <= 0:
                return withdrawn
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(remaining, 0.1))

    def _withdraw_unstarted(self, partitions: set[TopicPartition] | None) -> int:
        """Take back queued jobs and batched meter events not yet started: they will not be
        answered here, their offsets stay uncommitted, and Kafka redelivers them."""

        def unwanted(owner: object) -> bool:
            return isinstance(owner, InboundRecord) and (
                partitions is None or owner.topic_partition in partitions
            )

        records = self.scheduler.withdraw(unwanted)
        if self._meter_batcher is not None:
            events = self._meter_batcher.withdraw(unwanted)
            self.metered -= len(events)
            records += events
        for record in records:
            if isinstance(record, InboundRecord):  # always: `unwanted` chose only records
                self.offsets.abandon(record.topic_partition, record.offset)
        return len(records)

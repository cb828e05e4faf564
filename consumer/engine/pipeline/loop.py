"""The fetch loop: the :class:`Pipeline` that drives records from fetch to commit (the
package docstring tells the rules). It delegates delivery, back-pressure, the log line and
the bookkeeping of unanswered work to the modules beside it; the meter lane and the
requests held for a rejected key are its sections below."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

from consumer.engine.offsets import OffsetTracker
from consumer.engine.pipeline.backpressure import Backpressure
from consumer.engine.pipeline.delivery import Delivery
from consumer.engine.pipeline.finishing import Finishing
from consumer.engine.pipeline.held_requests import Held, HeldRequests
from consumer.engine.pipeline.in_flight import InFlight
from consumer.engine.pipeline.ports import (
    FailureMemory,
    MeterBatcher,
    PipelineLimits,
    Processor,
    Sink,
    Source,
    Timing,
)
from consumer.engine.pipeline.request_log import RequestLog
from consumer.engine.processing.answer import Handled
from consumer.engine.processing.execute import meter_outcome
from consumer.engine.processing.prepare import Prepared, PreparedMeterEvent
from consumer.engine.processing.processor import HeldRequest
from consumer.engine.replies import Outcome
from consumer.engine.scheduler import KeyedScheduler
from consumer.kafka.records import InboundRecord, TopicPartition
from consumer.metering.events import MeterResult
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.stripe.credential_gate import CredentialGate

_log = get_logger()
# Records admitted per event-loop turn: a whole fetch (500) started at once held every other
# callback (Stripe's answers, Kafka's acknowledgements) ~100 ms, the tail of row c.
ADMITTED_PER_TURN: Final = 32


@dataclass(slots=True)
class _Parked:
    """A record held while Stripe rejects its integration's key."""

    record: InboundRecord
    prepared: Prepared
    timing: Timing
    meter_event: PreparedMeterEvent | None  # from the meter lane: back to the batcher


class Pipeline:
    def __init__(
        self,
        source: Source,
        sink: Sink,
        processor: Processor,
        metrics: ServiceMetrics,
        *,
        reply_topic: str,
        limits: PipelineLimits,
        meter_topic: str | None = None,
        meter_batcher: MeterBatcher | None = None,
        gate: CredentialGate | None = None,
        memory: FailureMemory | None = None,
    ) -> None:
        self._source = source
        self._processor = processor
        self._metrics = metrics
        self._limits = limits
        self._meter_topic = meter_topic if meter_batcher is not None else None
        self._meter_batcher = meter_batcher
        self._recalling: set[asyncio.Task[None]] = set()
        held: HeldRequests[_Parked] = HeldRequests(
            gate or CredentialGate(),
            hold_seconds=limits.credential_hold_seconds,
            max_held=limits.max_buffered,
        )
        self._work = InFlight(
            OffsetTracker(), KeyedScheduler(limits.max_in_flight), held, meter_batcher
        )
        self._delivery = Delivery(
            sink,
            metrics,
            reply_topic=reply_topic,
            custom_reply_topic_timeout_seconds=limits.custom_reply_topic_timeout_seconds,
            memory=memory,
        )
        self._finishing = Finishing(self._delivery, self._work, self._finished)
        self._backpressure = Backpressure(
            source,
            metrics,
            meter_topic=self._meter_topic,
            max_buffered=limits.max_buffered,
            max_buffered_meter_events=limits.max_buffered_meter_events,
        )
        self._request_log = RequestLog(metrics)
        self._assigned: set[TopicPartition] = set()
        self._last_commit = time.monotonic()
        self._commit_lock = asyncio.Lock()
        self.last_fetch_monotonic = time.monotonic()
        self.group_joined = asyncio.Event()

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                records = await self._source.fetch(0.2, self._limits.fetch_max_records)
                self.last_fetch_monotonic = time.monotonic()
                self._metrics.last_poll.set(time.time())
                self._settle_held()  # released ones go before newer records
                consumed: Counter[str] = Counter()
                for index, record in enumerate(records, 1):
                    consumed[record.topic] += 1
                    self._admit(record)
                    if index % ADMITTED_PER_TURN == 0:  # their jobs start, I/O is handled
                        await asyncio.sleep(0)
                for topic, count in consumed.items():
                    self._metrics.records_consumed.labels(topic).inc(count)
                self._metrics.in_flight.set(self._work.count)
                self._apply_backpressure()
                if time.monotonic() - self._last_commit >= self._limits.commit_interval_seconds:
                    await self.commit()
                    self._update_lag()
        finally:
            await self._drain()

    def _admit(self, record: InboundRecord) -> None:
        tp = record.topic_partition
        if tp not in self._assigned:
            return  # fetched just before its partition was revoked: the new owner has it
        self._work.offsets.track(tp, record.offset)
        timing = Timing(time.perf_counter())
        if record.topic == self._meter_topic and self._admit_meter_event(record, timing):
            return
        self._submit(record, timing)

    def _submit(self, record: InboundRecord, timing: Timing) -> None:
        key: Hashable = (
            (record.topic, record.key)
            if record.key is not None
            else (record.topic_partition, record.offset)
        )
        self._work.scheduler.submit(
            key,
            lambda: self._handle(record, timing),
            record,
            also=self._processor.written_objects(record),  # one write per object at a time
        )

    # -- the meter lane -------------------------------------------------------------------

    def _admit_meter_event(self, record: InboundRecord, timing: Timing) -> bool:
        """Valid meter events skip the per-key scheduler: usage adds up whatever the order,
        and batching needs many events at once. Anything else takes the ordinary path."""
        prepared = self._processor.prepare_meter_event(record)
        if prepared is None or self._meter_batcher is None:
            return False
        timing.started = timing.received  # batched at once
        if prepared.prepared.reply_due:  # it may have been answered FAILED before: ask first
            task = asyncio.create_task(self._recall_meter_event(record, prepared, timing))
            self._recalling.add(task)
            task.add_done_callback(self._recalling.discard)
        else:
            self._batch_meter_event(record, prepared, timing)
        return True

    async def _recall_meter_event(
        self, record: InboundRecord, prepared: PreparedMeterEvent, timing: Timing
    ) -> None:
        """A copy of a meter event whose task was already answered (FAILED, say) is answered
        the same from memory, never batched; any other goes on to the batcher."""
        handled = await self._processor.remembered(record, prepared.prepared)
        if record.topic_partition not in self._assigned:
            self._work.abandoned(record)  # revoked meanwhile: the new owner answers it
        elif handled is None:
            self._batch_meter_event(record, prepared, timing)
        else:
            timing.processed = time.perf_counter()
            await self._finishing.deliver(record, handled, timing)

    def _batch_meter_event(
        self, record: InboundRecord, prepared: PreparedMeterEvent, timing: Timing
    ) -> None:
        if self._work.held.is_rejected(prepared.prepared.credential.integration):
            self._park(record, prepared.prepared, timing, prepared)
        else:
            self._submit_meter_event(record, prepared, timing)

    def _submit_meter_event(
        self, record: InboundRecord, prepared: PreparedMeterEvent, timing: Timing
    ) -> None:
        assert self._meter_batcher is not None  # only meter-lane events come here
        self._work.metered += 1
        self._meter_batcher.submit(
            prepared.event,
            lambda result: self._meter_event_answered(record, prepared, timing, result),
            record,
        )

    def _meter_event_answered(
        self,
        record: InboundRecord,
        prepared: PreparedMeterEvent,
        timing: Timing,
        result: MeterResult,
    ) -> None:
        self._work.metered -= 1
        if result.status == "held":
            self._park(record, prepared.prepared, timing, prepared)
            return
        timing.processed = time.perf_counter()
        quiet = not prepared.prepared.reply_due and result.status != "failed"
        if quiet and not _log.isEnabledFor(logging.DEBUG):
            # Counted, and nobody asked for a reply: the common case, thousands a second.
            # Nothing to deliver and no log line: only the offset and the metrics.
            self._work.answered(record)
            self._request_log.count(
                "create_meter_event", "NO_REPLY", timing.processed - timing.received
            )
            return
        outcome = meter_outcome(prepared.event, result, with_output=prepared.prepared.reply_due)
        handled = self._processor.answer(record, prepared.prepared, outcome)
        self._finishing.later(record, handled, timing)

    async def _handle(self, record: InboundRecord, timing: Timing) -> None:
        """Process one record; timed from when it was fetched (queueing counts)."""
        tp = record.topic_partition
        if tp not in self._assigned:
            # Revoked between being scheduled and running: the partition's new owner answers
            # it; not waited for, never committed from here.
            self._work.abandoned(record)
            return
        timing.started = time.perf_counter()
        handled = await self._processor.process(record)
        if isinstance(handled, HeldRequest):
            self._park(record, handled.prepared, timing, None)
            return  # its slot is free at once: held requests wait outside the scheduler
        timing.processed = time.perf_counter()
        if self._finishing.soon(record, handled, timing):
            return  # its slot is free: the batch's acknowledgement finishes it
        if not await self._delivery.deliver(handled):
            return  # stopping before Kafka took the reply: left uncommitted, redelivered
        self._finished(record, handled, timing)

    def _finished(self, record: InboundRecord, handled: Handled, timing: Timing) -> None:
        """Its reply (if any) is acknowledged: the offset may be committed."""
        self._work.answered(record)
        self._request_log.observe(handled, timing, time.perf_counter())

    # -- held for a rejected key ------------------------------------------------------------

    def _park(
        self,
        record: InboundRecord,
        prepared: Prepared,
        timing: Timing,
        meter_event: PreparedMeterEvent | None,
    ) -> None:
        integration = prepared.credential.integration
        timing.held_since = self._work.held.park(
            _Parked(record, prepared, timing, meter_event),
            integration=integration,
            partition=record.topic_partition,
            since=timing.held_since,
        )
        self._metrics.credential_held.labels(integration).inc()

    def _settle_held(self) -> None:
        """Run what its key lets run again; answer what was held too long (FAILED)."""
        released, expired = self._work.held.settle()
        for held in released:
            self._metrics.credential_held.labels(held.integration).dec()
            parked = held.item
            if parked.meter_event is not None:
                self._submit_meter_event(parked.record, parked.meter_event, parked.timing)
            else:
                self._submit(parked.record, parked.timing)
        for held in expired:
            self._metrics.credential_held.labels(held.integration).dec()
            self._answer_held_too_long(held)

    def _answer_held_too_long(self, held: Held[_Parked]) -> None:
        parked = held.item
        parked.timing.processed = time.perf_counter()
        outcome = Outcome.failed(self._work.held.failure(held.integration))
        handled = self._processor.answer(parked.record, parked.prepared, outcome)
        self._finishing.later(parked.record, handled, parked.timing)

    # -- offsets -------------------------------------------------------------------------

    async def commit(self, partitions: set[TopicPartition] | None = None) -> None:
        async with self._commit_lock:
            self._last_commit = time.monotonic()
            chosen = self._assigned if partitions is None else partitions
            offsets = self._work.offsets.committable(chosen)
            if not offsets:
                return
            try:
                await self._source.commit(offsets)
            except Exception as exc:  # a rebalance in progress, a broker restart
                self._metrics.commits.labels("failed").inc()
                _log.warning("offset commit failed; will retry", extra={"error": repr(exc)})
                return
            self._work.offsets.mark_committed(offsets)
            self._metrics.commits.labels("ok").inc()

    def _update_lag(self) -> None:
        for tp in self._assigned:
            end = self._source.highwater(tp)
            point = self._work.offsets.position(tp)
            if end is not None and point is not None:
                self._metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - point))

    # -- rebalance ------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        began = time.monotonic()
        self._assigned -= revoked
        self._backpressure.forget(revoked)
        withdrawn = await self._work.wait_started(revoked, self._limits.revoke_timeout_seconds)
        unanswered = self._work.unanswered(revoked)
        await self.commit(revoked)
        self._work.offsets.forget(revoked)
        for held in self._work.held.drop(revoked):
            self._metrics.credential_held.labels(held.integration).dec()
        for tp in revoked:
            with contextlib.suppress(KeyError):  # no lag sample yet for this partition
                self._metrics.lag.remove(tp.topic, str(tp.partition))
        self._metrics.in_flight.set(self._work.count)
        if not revoked:
            return  # aiokafka's call before the first join: nothing was ours
        _log.info(
            "partitions revoked",
            extra={
                "partitions": ",".join(sorted(f"{tp.topic}:{tp.partition}" for tp in revoked)),
                "withdrawn": withdrawn,
                "unanswered": unanswered,
                "waited_ms": round((time.monotonic() - began) * 1000, 1),
            },
        )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned |= assigned
        self._metrics.rebalances.inc()
        self._apply_backpressure()
        self.group_joined.set()

    # -- shutdown -------------------------------------------------------------------------

    async def _drain(self) -> None:
        self._delivery.stopping = True
        await self._work.wait_started(None, self._limits.shutdown_grace_seconds)
        if self._work.held:
            _log.warning(
                "stopping with requests held for a rejected key (redelivered later)",
                extra={"held": len(self._work.held)},
            )
        if self._work.unanswered(None):
            _log.warning(
                "shutdown grace period over; abandoning unfinished requests (redelivered later)",
                extra={"abandoned": self._work.offsets.pending()},
            )
            await self._work.scheduler.cancel()
        await self.commit()

    def _apply_backpressure(self) -> None:
        requests = self._work.scheduler.queued + self._work.delivering
        self._backpressure.apply(self._assigned, requests, self._work.metered)

"""The consumer loop: fetch, dispatch by key, deliver replies, commit what is answered.

::

    fetch (getmany) ─► track offset ─► per-key scheduler ─► processor ─► deliver reply/DLQ
                                                                          (acks=all)
                                                             ─► offset done ─► periodic commit

Rules that keep it correct:

- An offset is committed only after the reply (and DLQ record) for it, and for every earlier
  offset of its partition, is acknowledged by Kafka. A crash at any point means redelivery,
  never loss; idempotency keys make redelivery safe.
- The loop never waits on work: it keeps fetching (aiokafka's liveness counts time between
  fetches) and pauses partitions while too much work is buffered, resuming below half.
- On revoke: work not yet started for those partitions is withdrawn (the new owner redoes
  it); started work gets a bounded time to finish; then what is answered is committed. Only
  started work is waited for, so a backlog never makes a rebalance wait its full timeout.
  Started means: a request's job is running; a meter event's batch holds a sending slot
  (its identifiers claimed in the ledger, on their way to Stripe). A meter event still queued,
  waiting for a slot or for a retry's backoff is not started.
- While Stripe rejects an integration's key, its requests and meter events are held outside
  the worker slots (``held_requests.py``), at most ``credential_hold_seconds``; then each is
  answered `FAILED` (reply or DLQ) and its offset committed like any other.
- On stop: fetching stops, unstarted work is withdrawn, started work drains within the grace
  period, answered offsets are committed; unfinished work is abandoned uncommitted, to be
  redelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Final, Protocol

import msgspec

from consumer.engine.held_requests import Held, HeldRequests
from consumer.engine.offsets import OffsetTracker
from consumer.engine.processing.answer import Handled
from consumer.engine.processing.execute import meter_outcome
from consumer.engine.processing.prepare import Prepared, PreparedMeterEvent
from consumer.engine.processing.processor import HeldRequest
from consumer.engine.replies import Outcome
from consumer.engine.scheduler import KeyedScheduler
from consumer.kafka.records import DeliveryFailed, InboundRecord, OutboundRecord, TopicPartition
from consumer.metering.events import MeterEvent, MeterResult
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.stripe.credential_gate import CredentialGate

_log = get_logger()
_DLQ_TRUNCATED_BYTES: Final = 64 * 1024


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


@dataclass(slots=True)
class _Parked:
    """A record held while Stripe rejects its integration's key."""

    record: InboundRecord
    prepared: Prepared
    timing: Timing
    meter_event: PreparedMeterEvent | None  # from the meter lane: back to the batcher


class Source(Protocol):
    async def fetch(self, timeout_s: float, max_records: int) -> list[InboundRecord]: ...
    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...
    def pause(self, partitions: set[TopicPartition]) -> None: ...
    def resume(self, partitions: set[TopicPartition]) -> None: ...
    def highwater(self, tp: TopicPartition) -> int | None: ...


class Sink(Protocol):
    async def send(self, record: OutboundRecord) -> None: ...


class Processor(Protocol):
    async def process(self, record: InboundRecord) -> Handled | HeldRequest: ...
    def prepare_meter_event(self, record: InboundRecord) -> PreparedMeterEvent | None: ...
    def answer(self, record: InboundRecord, prepared: Prepared, outcome: Outcome) -> Handled: ...


class MeterBatcher(Protocol):
    def submit(
        self, event: MeterEvent, on_result: Callable[[MeterResult], None], owner: object
    ) -> None: ...
    def withdraw(self, unwanted: Callable[[object], bool]) -> list[object]: ...


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
    ) -> None:
        self._source = source
        self._sink = sink
        self._processor = processor
        self._metrics = metrics
        self._reply_topic = reply_topic
        self._limits = limits
        self._meter_topic = meter_topic if meter_batcher is not None else None
        self._meter_batcher = meter_batcher
        self._metered = 0  # meter events in batches, not yet answered
        self._finishing: set[asyncio.Task[None]] = set()
        self._offsets = OffsetTracker()
        self._scheduler = KeyedScheduler(limits.max_in_flight)
        self._held: HeldRequests[_Parked] = HeldRequests(
            gate or CredentialGate(),
            hold_seconds=limits.credential_hold_seconds,
            max_held=limits.max_buffered,
        )
        self._assigned: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._stopping = False
        self._last_commit = time.monotonic()
        self._commit_lock = asyncio.Lock()
        self._progress = asyncio.Event()  # set whenever a record is answered
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
                for record in records:
                    consumed[record.topic] += 1
                    self._admit(record)
                for topic, count in consumed.items():
                    self._metrics.records_consumed.labels(topic).inc(count)
                self._metrics.in_flight.set(self._in_flight)
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
        self._offsets.track(tp, record.offset)
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
        self._scheduler.submit(key, lambda: self._handle(record, timing), record)

    @property
    def _in_flight(self) -> int:
        return self._scheduler.queued + self._metered + len(self._held)

    # -- the meter lane -------------------------------------------------------------------

    def _admit_meter_event(self, record: InboundRecord, timing: Timing) -> bool:
        """Valid meter events skip the per-key scheduler: usage adds up whatever the order,
        and batching needs many events at once. Anything else takes the ordinary path."""
        prepared = self._processor.prepare_meter_event(record)
        if prepared is None or self._meter_batcher is None:
            return False
        timing.started = timing.received  # batched at once
        if self._held.is_rejected(prepared.prepared.credential.integration):
            self._park(record, prepared.prepared, timing, prepared)
        else:
            self._submit_meter_event(record, prepared, timing)
        return True

    def _submit_meter_event(
        self, record: InboundRecord, prepared: PreparedMeterEvent, timing: Timing
    ) -> None:
        assert self._meter_batcher is not None  # only meter-lane events come here
        self._metered += 1
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
        self._metered -= 1
        if result.status == "held":
            self._park(record, prepared.prepared, timing, prepared)
            return
        timing.processed = time.perf_counter()
        quiet = not prepared.prepared.reply_due and result.status != "failed"
        if quiet and not _log.isEnabledFor(logging.DEBUG):
            # Counted, and nobody asked for a reply: the common case, thousands a second.
            # Nothing to deliver and no log line: only the offset and the metrics.
            self._answered(record)
            self._count("create_meter_event", "NO_REPLY", timing.processed - timing.received)
            return
        outcome = meter_outcome(prepared.event, result, with_output=prepared.prepared.reply_due)
        handled = self._processor.answer(record, prepared.prepared, outcome)
        self._answer_later(record, handled, timing)

    def _answer_later(self, record: InboundRecord, handled: Handled, timing: Timing) -> None:
        """Deliver (in its own task, when there is something to deliver), then finish."""
        if handled.reply is None and handled.dead_letter is None:
            self._finished(record, handled, timing)
            return
        task = asyncio.create_task(self._deliver_and_finish(record, handled, timing))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _deliver_and_finish(
        self, record: InboundRecord, handled: Handled, timing: Timing
    ) -> None:
        if await self._deliver(handled):
            self._finished(record, handled, timing)

    async def _handle(self, record: InboundRecord, timing: Timing) -> None:
        """Process one record; timed from when it was fetched (queueing counts)."""
        tp = record.topic_partition
        if tp not in self._assigned:
            # Revoked between being scheduled and running: the partition's new owner answers
            # it; not waited for, never committed from here.
            self._offsets.abandon(tp, record.offset)
            self._progress.set()
            return
        timing.started = time.perf_counter()
        handled = await self._processor.process(record)
        if isinstance(handled, HeldRequest):
            self._park(record, handled.prepared, timing, None)
            return  # its slot is free at once: held requests wait outside the scheduler
        timing.processed = time.perf_counter()
        if not await self._deliver(handled):
            return  # stopping before Kafka took the reply: left uncommitted, redelivered
        self._finished(record, handled, timing)

    def _finished(self, record: InboundRecord, handled: Handled, timing: Timing) -> None:
        """Its reply (if any) is acknowledged: the offset may be committed."""
        self._answered(record)
        self._observe(handled, timing, time.perf_counter())

    def _answered(self, record: InboundRecord) -> None:
        self._offsets.done(record.topic_partition, record.offset)
        self._progress.set()

    # -- held for a rejected key ------------------------------------------------------------

    def _park(
        self,
        record: InboundRecord,
        prepared: Prepared,
        timing: Timing,
        meter_event: PreparedMeterEvent | None,
    ) -> None:
        integration = prepared.credential.integration
        timing.held_since = self._held.park(
            _Parked(record, prepared, timing, meter_event),
            integration=integration,
            partition=record.topic_partition,
            since=timing.held_since,
        )
        self._metrics.credential_held.labels(integration).inc()

    def _settle_held(self) -> None:
        """Run what its key lets run again; answer what was held too long (FAILED)."""
        released, expired = self._held.settle()
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
        outcome = Outcome.failed(self._held.failure(held.integration))
        handled = self._processor.answer(parked.record, parked.prepared, outcome)
        self._answer_later(parked.record, handled, parked.timing)

    def _unanswered(self, partitions: set[TopicPartition] | None) -> int:
        """Records being worked on: tracked, not answered, not held for a rejected key (those
        wait for the key, not for this consumer; they stay uncommitted)."""
        return self._offsets.pending(partitions) - self._held.count(partitions)

    # -- delivery -------------------------------------------------------------------------

    async def _deliver(self, handled: Handled) -> bool:
        if handled.dead_letter is None:  # the common case: one reply (or none), no extra task
            return handled.reply is None or await self._send_reply(handled, handled.reply)
        sends = [self._send_dead_letter(handled.dead_letter)]
        if handled.reply is not None:
            sends.append(self._send_reply(handled, handled.reply))
        return all(await asyncio.gather(*sends))

    async def _send_reply(self, handled: Handled, record: OutboundRecord) -> bool:
        started = time.monotonic()
        original = record

        def instead(refused: OutboundRecord, failure: DeliveryFailed) -> OutboundRecord | None:
            """A reply its topic will not take (or, for a custom topic, not soon): a small
            failure reply on the default topic instead, once (then it is retried)."""
            custom_topic = refused.topic != self._reply_topic
            waited = time.monotonic() - started > self._limits.custom_reply_topic_timeout_seconds
            if refused is not original or (failure.retriable and not (custom_topic and waited)):
                return None
            _log.error(
                "reply undeliverable; sending a failure reply to the default topic",
                extra={"topic": refused.topic, "error": str(failure)},
            )
            return handled.undeliverable(self._reply_topic, str(failure))

        return await self._send_until_acknowledged(record, instead)

    async def _send_dead_letter(self, record: OutboundRecord) -> bool:
        def instead(refused: OutboundRecord, failure: DeliveryFailed) -> OutboundRecord | None:
            """A record the DLQ refuses for good (too large): keep its head, say so."""
            if failure.retriable or len(refused.value) <= _DLQ_TRUNCATED_BYTES:
                return None
            return OutboundRecord(
                refused.topic,
                refused.key,
                refused.value[:_DLQ_TRUNCATED_BYTES],
                (*refused.headers, ("dlq.truncated", b"true")),
            )

        return await self._send_until_acknowledged(record, instead)

    async def _send_until_acknowledged(
        self,
        record: OutboundRecord,
        instead: Callable[[OutboundRecord, DeliveryFailed], OutboundRecord | None],
    ) -> bool:
        """Send until Kafka acknowledges; ``instead`` may replace a refused record. False
        when stopping first (the offset then stays uncommitted and the record returns)."""
        attempt = 0
        while True:
            try:
                await self._sink.send(record)
            except DeliveryFailed as failure:
                replacement = instead(record, failure)
                if replacement is not None:
                    record = replacement
                    continue
                attempt += 1
                if not await self._before_retry(attempt, failure):
                    return False
            else:
                return True

    async def _before_retry(self, attempt: int, failure: DeliveryFailed) -> bool:
        """Back off before sending again; False when stopping (give up, stay uncommitted)."""
        if self._stopping:
            return False
        self._metrics.delivery_retries.inc()
        if attempt == 1 or attempt % 20 == 0:
            _log.warning("Kafka refused a record; retrying", extra={"error": str(failure)})
        await asyncio.sleep(min(5.0, 0.1 * 2 ** min(attempt, 6)))
        return True

    # -- offsets and back-pressure --------------------------------------------------------

    async def commit(self, partitions: set[TopicPartition] | None = None) -> None:
        async with self._commit_lock:
            self._last_commit = time.monotonic()
            chosen = self._assigned if partitions is None else partitions
            offsets = self._offsets.committable(chosen)
            if not offsets:
                return
            try:
                await self._source.commit(offsets)
            except Exception as exc:  # a rebalance in progress, a broker restart
                self._metrics.commits.labels("failed").inc()
                _log.warning("offset commit failed; will retry", extra={"error": repr(exc)})
                return
            self._offsets.mark_committed(offsets)
            self._metrics.commits.labels("ok").inc()

    def _apply_backpressure(self) -> None:
        """Pause partitions whose work is piling up; resume below half. Requests (per-key
        scheduler) and meter events (batches) have their own bounds, so a usage backlog
        never holds up Conductor's requests, and pausing stays rare for each."""
        full_requests = self._full(
            self._scheduler.queued, self._limits.max_buffered, self._requests_paused
        )
        full_meter = self._full(
            self._metered, self._limits.max_buffered_meter_events, self._meter_paused
        )
        wanted = {
            tp
            for tp in self._assigned
            if (full_meter or full_requests if tp.topic == self._meter_topic else full_requests)
        }
        if wanted - self._paused:
            self._source.pause(wanted - self._paused)
        if self._paused - wanted:
            self._source.resume(self._paused - wanted)
        self._paused = wanted
        self._metrics.paused_partitions.set(len(self._paused))

    @property
    def _requests_paused(self) -> bool:
        return any(tp.topic != self._meter_topic for tp in self._paused)

    @property
    def _meter_paused(self) -> bool:
        return any(tp.topic == self._meter_topic for tp in self._paused)

    @staticmethod
    def _full(buffered: int, bound: int, paused: bool) -> bool:
        """Hysteresis: full at the bound; once paused, full until below half of it."""
        return buffered >= bound or (paused and buffered > bound // 2)

    def _update_lag(self) -> None:
        for tp in self._assigned:
            end = self._source.highwater(tp)
            point = self._offsets.position(tp)
            if end is not None and point is not None:
                self._metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - point))

    # -- rebalance ------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        began = time.monotonic()
        self._assigned -= revoked
        self._paused -= revoked
        withdrawn = await self._wait_started(revoked, self._limits.revoke_timeout_seconds)
        unanswered = self._unanswered(revoked)
        await self.commit(revoked)
        self._offsets.forget(revoked)
        for held in self._held.drop(revoked):
            self._metrics.credential_held.labels(held.integration).dec()
        for tp in revoked:
            with contextlib.suppress(KeyError):  # no lag sample yet for this partition
                self._metrics.lag.remove(tp.topic, str(tp.partition))
        self._metrics.in_flight.set(self._in_flight)
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

    async def _wait_started(self, partitions: set[TopicPartition] | None, timeout_s: float) -> int:
        """Withdraw the work of these partitions (None: all) that has not started, then wait
        until the started work is answered, or the timeout. Returns how much was withdrawn."""
        deadline = time.monotonic() + timeout_s
        withdrawn = 0
        while True:
            # Again on every round: a meter batch that failed transiently goes back to wait
            # for its retry, and is then no longer started.
            withdrawn += self._withdraw_unstarted(partitions)
            remaining = deadline - time.monotonic()
            if not self._unanswered(partitions) or remaining <= 0:
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

        records = self._scheduler.withdraw(unwanted)
        if self._meter_batcher is not None:
            events = self._meter_batcher.withdraw(unwanted)
            self._metered -= len(events)
            records += events
        for record in records:
            if isinstance(record, InboundRecord):  # always: `unwanted` chose only records
                self._offsets.abandon(record.topic_partition, record.offset)
        return len(records)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned |= assigned
        self._metrics.rebalances.inc()
        self._apply_backpressure()
        self.group_joined.set()

    # -- shutdown -------------------------------------------------------------------------

    async def _drain(self) -> None:
        self._stopping = True
        await self._wait_started(None, self._limits.shutdown_grace_seconds)
        if self._held:
            _log.warning(
                "stopping with requests held for a rejected key (redelivered later)",
                extra={"held": len(self._held)},
            )
        if self._unanswered(None):
            _log.warning(
                "shutdown grace period over; abandoning unfinished requests (redelivered later)",
                extra={"abandoned": self._offsets.pending()},
            )
            await self._scheduler.cancel()
        await self.commit()

    # -- observation ----------------------------------------------------------------------

    def _count(self, operation: str, status: str, seconds: float) -> None:
        self._metrics.requests.labels(operation, status).inc()
        self._metrics.request_duration.labels(operation).observe(seconds)

    def _observe(self, handled: Handled, timing: Timing, now: float) -> None:
        seconds = now - timing.received
        status = handled.status if handled.reply is not None else "NO_REPLY"
        self._count(handled.operation or "unknown", status, seconds)
        if handled.dead_letter_reason is not None:
            self._metrics.dlq.labels(handled.dead_letter_reason).inc()
        outcome = handled.outcome
        # One line per request; quiet meter events (thousands a second, no reply asked for)
        # only at DEBUG unless they failed: their metrics tell the story.
        quiet = handled.reply is None and handled.dead_letter is None
        level = logging.DEBUG if quiet and outcome.status == "COMPLETED" else logging.INFO
        if not _log.isEnabledFor(level):
            return
        error = outcome.error
        _log.log(
            level,
            "request",
            extra={
                "operation": handled.operation,
                "status": handled.status,
                "taskId": _text(handled.conductor.taskId),
                "workflowInstanceId": _text(handled.conductor.workflowInstanceId),
                "taskRefName": _text(handled.conductor.taskRefName),
                "idempotency_key": handled.idempotency_key,
                "stripe_request_id": outcome.stripe_request_id,
                "attempts": outcome.attempts,
                "deduplicated": outcome.deduplicated,
                "error_type": error.type if error else None,
                "error_code": (error.decline_code or error.code) if error else None,
                "error_param": error.param if error else None,
                "record": str(handled.coordinates),
                "reply_topic": handled.reply.topic if handled.reply else None,
                "dlq_reason": handled.dead_letter_reason,
                "duration_ms": round(seconds * 1000, 2),
                "queued_ms": round((timing.started - timing.received) * 1000, 2),
                "stripe_ms": round(outcome.stripe_seconds * 1000, 2),
                "reply_ms": round((now - timing.processed) * 1000, 2),
            },
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None

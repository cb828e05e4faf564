"""The consumer loop with fake Kafka ends: what it commits, when it pauses, what it sends
when a reply cannot be delivered, what it does on revoke."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence

import msgspec
from prometheus_client import CollectorRegistry

from consumer.contract.errors import RequestRejected
from consumer.contract.idempotency import RecordCoordinates
from consumer.contract.requests import ConductorFields, Request
from consumer.engine.pipeline import Pipeline, PipelineLimits
from consumer.engine.processing.answer import Handled
from consumer.engine.processing.prepare import Prepared, PreparedMeterEvent
from consumer.engine.replies import Outcome, ReplyAddress, reply_record
from consumer.engine.reply_memory import AnswerKeys, MemorySlot, ReplyMemory
from consumer.kafka.records import DeliveryFailed, InboundRecord, OutboundRecord, TopicPartition
from consumer.metering.batcher import MeterEventBatcher
from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.ledgers.memory import MemoryIdentifierLedger
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import Secret, StripeCredential
from tests.unit.fakes import settings

TP = TopicPartition("requests", 0)
TP1 = TopicPartition("requests", 1)
METER_TP = TopicPartition("meter", 0)
CREDENTIAL = settings().credentials["default"]
PREPARED = Prepared(
    request=msgspec.convert({"operation": "get_balance"}, Request),
    passthrough={},
    reply_topic="replies",
    reply_due=True,
    credential=StripeCredential("default", Secret("sk_test_51PipelineTests")),
    idempotency_key="key",
    request_hash="hash",
    meter_identifier=None,
)


def record(offset: int, key: bytes | None = None, partition: int = 0) -> InboundRecord:
    return InboundRecord(
        "requests",
        partition,
        offset,
        key if key is not None else f"k{partition}-{offset}".encode(),
        b"{}",
        (),
        0,
    )


class Source:
    def __init__(self, records: list[InboundRecord]) -> None:
        self.records = list(records)
        self.commits: list[dict[TopicPartition, int]] = []
        self.paused: set[TopicPartition] = set()

    async def fetch(self, timeout_s: float, max_records: int) -> list[InboundRecord]:
        await asyncio.sleep(0.001)
        if self.paused:
            return []
        batch, self.records = self.records[:max_records], self.records[max_records:]
        return batch

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, partitions: set[TopicPartition]) -> None:
        self.paused |= partitions

    def resume(self, partitions: set[TopicPartition]) -> None:
        self.paused -= partitions

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.end

    end: int | None = None  # the partition's end offset, as the last fetch saw it


class Sink:
    def __init__(
        self, refuse: Callable[[OutboundRecord], DeliveryFailed | None] = lambda _: None
    ) -> None:
        self.sent: list[OutboundRecord] = []
        self.refuse = refuse
        self.gate = asyncio.Event()
        self.gate.set()
        self._batches: set[asyncio.Future[None]] = set()

    async def send(self, outbound: OutboundRecord) -> None:
        await self.gate.wait()
        failure = self.refuse(outbound)
        if failure is not None:
            raise failure
        self.sent.append(outbound)

    def send_soon(
        self, outbound: OutboundRecord, acknowledged: Callable[[DeliveryFailed | None], None]
    ) -> bool:
        """As the real sink's batches: acknowledged later, by a callback, or failed."""

        async def later() -> None:
            try:
                await self.send(outbound)
            except DeliveryFailed as failure:
                acknowledged(failure)
            else:
                acknowledged(None)

        task = asyncio.ensure_future(later())
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)
        return True


class Processor:
    """Replies to every record (on `topic`) after `delay` seconds: a rejection, or `outcome`."""

    def __init__(
        self,
        topic: str = "replies",
        delay: float = 0.0,
        outcome: Outcome | None = None,
        memory: MemorySlot | None = None,
    ) -> None:
        self.topic = topic
        self.delay = delay
        self.outcome = outcome or Outcome.failed(RequestRejected("$", "x"))
        self.memory = memory
        self.order: list[int] = []

    async def process(self, inbound: InboundRecord) -> Handled:
        await asyncio.sleep(self.delay)
        return self.handled(inbound)

    def handled(self, inbound: InboundRecord) -> Handled:
        self.order.append(inbound.offset)
        outcome = self.outcome
        address = ReplyAddress(self.topic, inbound.key, ConductorFields(), {})
        coordinates = RecordCoordinates(inbound.topic, inbound.partition, inbound.offset)
        return Handled(
            coordinates,
            "get_balance",
            outcome,
            reply=reply_record(address, "get_balance", outcome, None),
            address=address,
            memory=self.memory,
        )

    def prepare_meter_event(self, inbound: InboundRecord) -> PreparedMeterEvent | None:
        return None

    async def remembered(self, inbound: InboundRecord, ready: Prepared) -> Handled | None:
        return None  # nothing answered before

    def written_objects(self, inbound: InboundRecord) -> tuple[Hashable, ...]:
        return ()  # writes to no existing object

    def answer(self, inbound: InboundRecord, prepared: Prepared, outcome: Outcome) -> Handled:
        raise NotImplementedError


class GatedProcessor(Processor):
    """Holds every record it starts until `release` is set; `started` lists them."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[tuple[int, int]] = []
        self.release = asyncio.Event()

    async def process(self, inbound: InboundRecord) -> Handled:
        self.started.append((inbound.partition, inbound.offset))
        await self.release.wait()
        return await super().process(inbound)


def pipeline(
    source: Source,
    sink: Sink,
    processor: Processor,
    registry: CollectorRegistry | None = None,
    **limits: float,
) -> Pipeline:
    return Pipeline(
        source,
        sink,
        processor,
        ServiceMetrics(registry or CollectorRegistry()),
        reply_topic="replies",
        limits=PipelineLimits(commit_interval_seconds=0.01, shutdown_grace_seconds=2, **limits),  # type: ignore[arg-type]
    )


async def eventually(condition: Callable[[], bool], timeout_s: float = 3) -> None:
    """Poll a condition the code under test has no event for."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def run_until(p: Pipeline, condition: Callable[[], bool], timeout_s: float = 3) -> None:
    stop = asyncio.Event()
    await p.on_partitions_assigned({TP})
    task = asyncio.create_task(p.run(stop))
    await eventually(condition, timeout_s)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_offsets_are_committed_only_after_replies_are_acknowledged() -> None:
    """While Kafka holds the replies, nothing is committed; once acknowledged, all is."""
    source, sink = Source([record(i) for i in range(5)]), Sink()
    sink.gate.clear()
    p = pipeline(source, sink, Processor())
    stop = asyncio.Event()
    await p.on_partitions_assigned({TP})
    task = asyncio.create_task(p.run(stop))
    await asyncio.sleep(0.2)
    assert source.commits == []
    sink.gate.set()
    await eventually(lambda: len(sink.sent) == 5)
    await asyncio.sleep(0.05)
    stop.set()
    await task
    assert source.commits[-1] == {TP: 5}


async def test_lag_keeps_growing_while_the_head_record_is_stuck() -> None:
    """`stripe_consumer_lag` is the partition's end minus the first unanswered offset, every
    commit interval, even when that point has not moved (a stuck record is when it matters)."""
    source, sink = Source([record(0)]), Sink()
    sink.gate.clear()  # offset 0's reply is never acknowledged
    registry = CollectorRegistry()
    p = Pipeline(
        source,
        sink,
        Processor(),
        ServiceMetrics(registry),
        reply_topic="replies",
        limits=PipelineLimits(commit_interval_seconds=0.01, shutdown_grace_seconds=0.1),
    )

    def lag() -> float | None:
        return registry.get_sample_value(
            "stripe_consumer_lag", {"topic": "requests", "partition": "0"}
        )

    stop = asyncio.Event()
    await p.on_partitions_assigned({TP})
    task = asyncio.create_task(p.run(stop))
    source.end = 10
    await eventually(lambda: lag() == 10)
    source.end = 500  # more records arrive while the head stays unanswered
    await eventually(lambda: lag() == 500)
    stop.set()
    await task


async def test_same_key_in_order_other_keys_concurrently() -> None:
    """Records of one key are processed in offset order."""
    source = Source([record(i, key=b"same") for i in range(6)])
    processor = Processor(delay=0.01)
    p = pipeline(source, Sink(), processor)
    await run_until(p, lambda: len(processor.order) == 6)
    assert processor.order == list(range(6))


async def test_reply_a_custom_topic_refuses_becomes_a_failure_on_the_default_topic() -> None:
    """A reply that cannot be written where asked is not lost: a terminal failure reply goes
    to the default topic, and the offset moves on."""

    def refuse(out: OutboundRecord) -> DeliveryFailed | None:
        if out.topic == "replies.billing":
            return DeliveryFailed("TopicAuthorizationFailedError", retriable=False)
        return None

    source, sink = Source([record(0)]), Sink(refuse)
    p = pipeline(source, sink, Processor(topic="replies.billing"))
    await run_until(p, lambda: bool(sink.sent))
    [fallback] = sink.sent
    assert fallback.topic == "replies"
    assert b'"type":"reply_undeliverable"' in fallback.value
    assert b"TopicAuthorizationFailedError" in fallback.value
    assert source.commits[-1] == {TP: 1}


async def test_partitions_pause_past_the_buffer_bound_and_resume_below_half() -> None:
    """Back-pressure: fetching pauses while too much work is buffered, resumes later."""
    source = Source([record(i) for i in range(40)])
    processor = Processor(delay=0.02)
    p = pipeline(source, Sink(), processor, max_in_flight=2, max_buffered=10, fetch_max_records=10)
    paused_seen = False

    def done() -> bool:
        nonlocal paused_seen
        paused_seen = paused_seen or bool(source.paused)
        return len(processor.order) == 40

    await run_until(p, done, timeout_s=10)
    assert paused_seen
    assert source.paused == set()


async def test_revoke_waits_for_the_running_record_only_and_leaves_the_rest() -> None:
    """Revoke with one record running and four queued behind it (one key): the revoke waits
    for the running one, not its 60 s timeout, and commits it; the four queued records are
    withdrawn: never processed here, no longer counted in flight."""
    source = Source([record(i, key=b"one-key") for i in range(5)])
    processor, registry = GatedProcessor(), CollectorRegistry()
    p = pipeline(source, Sink(), processor, registry, revoke_timeout_seconds=60)
    stop = asyncio.Event()
    await p.on_partitions_assigned({TP})
    task = asyncio.create_task(p.run(stop))
    await eventually(lambda: processor.started == [(0, 0)] and not source.records)
    revoke = asyncio.create_task(p.on_partitions_revoked({TP}))
    await asyncio.sleep(0.2)
    assert not revoke.done()  # the running record is waited for
    processor.release.set()
    await asyncio.wait_for(revoke, 5)  # returns once it is answered, not at the timeout
    assert source.commits[-1] == {TP: 1}
    assert registry.get_sample_value("stripe_consumer_in_flight") == 0
    stop.set()
    await task
    assert processor.order == [0]


async def test_revoke_lets_go_of_a_job_scheduled_just_before_it() -> None:
    """A job whose task the scheduler created just before the revoke runs after it: it
    gives its record up (the new owner answers it) instead of leaving the revoke waiting
    for an answer that never comes."""

    class Immediate(GatedProcessor):
        async def process(self, inbound: InboundRecord) -> Handled:
            self.started.append((inbound.partition, inbound.offset))
            await self.release.wait()
            return self.handled(inbound)  # no await between the release and the answer

    source, processor = Source([record(0), record(1)]), Immediate()
    p = pipeline(source, Sink(), processor, max_in_flight=1, revoke_timeout_seconds=60)
    stop = asyncio.Event()
    await p.on_partitions_assigned({TP})
    task = asyncio.create_task(p.run(stop))
    await eventually(lambda: processor.started == [(0, 0)] and not source.records)
    processor.release.set()  # record 0 finishes and record 1's task is created, then:
    revoke = asyncio.create_task(p.on_partitions_revoked({TP}))
    await asyncio.wait_for(revoke, 5)
    assert processor.order == [0]
    assert source.commits[-1] == {TP: 1}
    stop.set()
    await task


async def test_revoke_under_a_backlog_waits_only_for_started_work() -> None:
    """300 records on two partitions, 8 running (the in-flight cap), the rest queued; one
    partition is revoked: the revoke returns as soon as its 4 running records are answered
    (its timeout is 60 s), commits exactly them, and its 146 queued records never run here;
    the kept partition's records all run."""
    records = [record(i, partition=p) for i in range(150) for p in (0, 1)]
    source, processor, registry = Source(records), GatedProcessor(), CollectorRegistry()
    p = pipeline(source, Sink(), processor, registry, max_in_flight=8, revoke_timeout_seconds=60)
    stop = asyncio.Event()
    await p.on_partitions_assigned({TP, TP1})
    task = asyncio.create_task(p.run(stop))
    await eventually(lambda: len(processor.started) == 8 and not source.records)
    revoke = asyncio.create_task(p.on_partitions_revoked({TP}))
    await asyncio.sleep(0.2)
    assert not revoke.done()  # four records of partition 0 are running
    processor.release.set()
    await asyncio.wait_for(revoke, 5)
    assert [c[TP] for c in source.commits if TP in c][-1] == 4
    await eventually(lambda: len(processor.order) == 4 + 150)
    stop.set()
    await task
    started = sorted(offset for partition, offset in processor.started if partition == 0)
    assert started == [0, 1, 2, 3]
    assert source.commits[-1] == {TP1: 150}


async def test_revoke_waits_for_the_meter_batch_at_stripe_not_the_queued_ones() -> None:
    """Meter lane, real batcher: one batch of 10 at Stripe (it holds the only sending slot),
    40 events queued behind it. The revoke waits for the 10 (started: claimed, being sent),
    commits them, and withdraws the 40: never sent from here, not counted in flight."""
    entered, release = asyncio.Event(), asyncio.Event()
    sent: list[list[str]] = []

    class Stripe:
        name = "v2_stream"

        async def send(
            self, scope: LedgerScope, credential: StripeCredential, events: Sequence[MeterEvent]
        ) -> list[MeterResult]:
            entered.set()
            await release.wait()
            sent.append([e.identifier for e in events])
            return [MeterResult("delivered")] * len(events)

    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)
    lane = MeterEventBatcher(
        Stripe(),
        MemoryIdentifierLedger(window_seconds=60, lease_seconds=60, max_entries=100, owner="me"),
        metrics,
        batch_size=10,
        concurrency=1,
    )
    source = Source([InboundRecord("meter", 0, i, b"k", b"{}", (), 0) for i in range(50)])
    p = Pipeline(
        source,
        Sink(),
        MeterProcessor(),
        metrics,
        reply_topic="replies",
        meter_topic="meter",
        meter_batcher=lane,
        limits=PipelineLimits(commit_interval_seconds=0.01, revoke_timeout_seconds=60),
    )
    stop = asyncio.Event()
    await p.on_partitions_assigned({METER_TP})
    task = asyncio.create_task(p.run(stop))
    await asyncio.wait_for(entered.wait(), 5)
    await eventually(lambda: not source.records)
    revoke = asyncio.create_task(p.on_partitions_revoked({METER_TP}))
    await asyncio.sleep(0.2)
    assert not revoke.done()  # the batch at Stripe is waited for
    release.set()
    await asyncio.wait_for(revoke, 5)
    assert source.commits[-1] == {METER_TP: 10}
    assert registry.get_sample_value("stripe_consumer_in_flight") == 0
    stop.set()
    await task
    assert await lane.close(timeout_s=2)
    assert sent == [[f"m{i}" for i in range(10)]]


class MeterProcessor(Processor):
    """Every record on the meter topic is a valid meter event `m<offset>`, no reply due."""

    def prepare_meter_event(self, inbound: InboundRecord) -> PreparedMeterEvent | None:
        prepared = Prepared(
            request=None,  # type: ignore[arg-type]
            passthrough={},
            reply_topic="replies",
            reply_due=False,
            credential=CREDENTIAL,
            idempotency_key=f"key-{inbound.offset}",
            request_hash="h",
            meter_identifier=f"m{inbound.offset}",
        )
        event = MeterEvent(
            LedgerScope("default", None),
            CREDENTIAL,
            "api_requests",
            f"m{inbound.offset}",
            {"stripe_customer_id": "cus_1", "value": "1"},
            None,
            f"key-{inbound.offset}",
        )
        return PreparedMeterEvent(prepared=prepared, event=event)

    def answer(self, inbound: InboundRecord, prepared: Prepared, outcome: Outcome) -> Handled:
        coordinates = RecordCoordinates(inbound.topic, inbound.partition, inbound.offset)
        return Handled(coordinates, "create_meter_event", outcome)


async def test_meter_lane_counts_towards_back_pressure() -> None:
    """Meter events waiting in batches count as buffered: a backlog cannot flood memory."""

    class Lane:
        def __init__(self) -> None:
            self.waiting: list[Callable[[MeterResult], None]] = []

        def submit(
            self, event: MeterEvent, on_result: Callable[[MeterResult], None], owner: object
        ) -> None:
            self.waiting.append(on_result)

        def withdraw(self, unwanted: Callable[[object], bool]) -> list[object]:
            return []

    class MeterProcessor(Processor):
        def prepare_meter_event(self, inbound: InboundRecord) -> PreparedMeterEvent | None:
            return PreparedMeterEvent(prepared=PREPARED, event=None)  # type: ignore[arg-type]

    source = Source([InboundRecord("meter", 0, i, b"k", b"{}", (), 0) for i in range(100)])
    lane = Lane()
    p = Pipeline(
        source,
        Sink(),
        MeterProcessor(),
        ServiceMetrics(CollectorRegistry()),
        reply_topic="replies",
        meter_topic="meter",
        meter_batcher=lane,
        limits=PipelineLimits(
            max_buffered_meter_events=20, fetch_max_records=5, shutdown_grace_seconds=0.1
        ),
    )
    stop = asyncio.Event()
    await p.on_partitions_assigned({TopicPartition("meter", 0)})
    task = asyncio.create_task(p.run(stop))
    await asyncio.sleep(0.3)
    assert 20 <= len(lane.waiting) < 30  # paused at the bound, not the whole backlog
    assert source.paused
    stop.set()
    await task


async def test_the_failure_that_replaces_an_undeliverable_reply_is_remembered() -> None:
    """A COMPLETED reply its topic refuses is replaced by a FAILED one on the default topic;
    that FAILED is what the workflow reads, so it is remembered by taskId before it is sent
    (a copy of the task is then answered FAILED, never COMPLETED after it)."""
    slot = MemorySlot(AnswerKeys.of("default", None, "wf:ref:h", "task-1"), "h")

    def refuse(out: OutboundRecord) -> DeliveryFailed | None:
        if out.topic == "replies.billing":
            return DeliveryFailed("TopicAuthorizationFailedError", retriable=False)
        return None

    memory = ReplyMemory(100, 3600)
    source, sink = Source([record(0)]), Sink(refuse)
    p = Pipeline(
        source,
        sink,
        Processor(topic="replies.billing", outcome=Outcome("COMPLETED"), memory=slot),
        ServiceMetrics(CollectorRegistry()),
        reply_topic="replies",
        limits=PipelineLimits(commit_interval_seconds=0.01, shutdown_grace_seconds=2),
        memory=memory,
    )
    await run_until(p, lambda: bool(sink.sent))
    remembered = await memory.recall(slot.keys, "h")
    assert remembered is not None
    assert remembered.status == "FAILED_WITH_TERMINAL_ERROR"
    assert remembered.error is not None
    assert remembered.error.type == "reply_undeliverable"

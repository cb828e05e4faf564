"""Requests held for a rejected key wait outside every worker slot, run when the key works
again, and are answered FAILED (authentication_error) once held for the hold: with fake
Kafka ends, so the slots, commits and replies can be read exactly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Hashable
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from consumer.contract.idempotency import RecordCoordinates
from consumer.contract.reply import ReplyError
from consumer.contract.requests import Request
from consumer.engine.pipeline import Pipeline, PipelineLimits
from consumer.engine.pipeline.held_requests import HeldRequests
from consumer.engine.processing.answer import Handled
from consumer.engine.processing.prepare import Prepared, PreparedMeterEvent
from consumer.engine.processing.processor import HeldRequest
from consumer.engine.replies import Outcome, ReplyAddress, reply_record
from consumer.kafka.records import InboundRecord, TopicPartition
from consumer.metering.events import MeterEvent, MeterResult
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import Secret, StripeCredential
from consumer.stripe.credential_gate import CredentialGate
from tests.unit.engine.test_pipeline import Sink, Source, eventually

TP = TopicPartition("requests", 0)
METER_TP = TopicPartition("meter", 0)
REJECTED = ReplyError(
    type="authentication_error",
    message="Invalid API Key provided: sk_test_[redacted]",
    http_status=401,
    request_id="req_401",
)


def prepared(integration: str) -> Prepared:
    return Prepared(
        request=msgspec.convert({"operation": "get_balance"}, Request),
        passthrough={},
        reply_topic="replies",
        reply_due=True,
        credential=StripeCredential(integration, Secret("sk_test_51HeldTests")),
        idempotency_key="key",
        request_hash="hash",
        meter_identifier=None,
    )


def record(offset: int, integration: str, topic: str = "requests") -> InboundRecord:
    return InboundRecord(topic, 0, offset, f"{integration}-{offset}".encode(), b"{}", (), 0)


async def never_accepted() -> bool | None:
    return False


class Processor:
    """Answers COMPLETED, except records of a rejected integration: held (as the real
    processor does when the executor raises CredentialHeld)."""

    def __init__(self, gate: CredentialGate, meter_integration: str = "billing") -> None:
        self.gate = gate
        self.processed: list[int] = []
        self.running = 0
        self.peak_running = 0
        self.meter_integration = meter_integration

    async def process(self, inbound: InboundRecord) -> Handled | HeldRequest:
        integration = inbound.key.decode().split("-")[0] if inbound.key else "default"
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        try:
            await asyncio.sleep(0.005)
            self.processed.append(inbound.offset)
            if self.gate.is_rejected(integration):
                return HeldRequest(prepared(integration))
            return self.answer(inbound, prepared(integration), Outcome("COMPLETED"))
        finally:
            self.running -= 1

    def prepare_meter_event(self, inbound: InboundRecord) -> PreparedMeterEvent | None:
        ready = prepared(self.meter_integration)
        event = MeterEvent(
            LedgerScope(self.meter_integration, None),
            ready.credential,
            "api_requests",
            f"id-{inbound.offset}",
            {"value": "1"},
            None,
            f"key-{inbound.offset}",
        )
        return PreparedMeterEvent(ready, event)

    async def remembered(self, inbound: InboundRecord, ready: Prepared) -> Handled | None:
        return None  # nothing answered before

    def written_objects(self, inbound: InboundRecord) -> tuple[Hashable, ...]:
        return ()  # writes to no existing object

    def answer(self, inbound: InboundRecord, ready: Prepared, outcome: Outcome) -> Handled:
        address = ReplyAddress(ready.reply_topic, inbound.key, ready.request, {})
        return Handled(
            RecordCoordinates(inbound.topic, inbound.partition, inbound.offset),
            "get_balance",
            outcome,
            reply=reply_record(address, "get_balance", outcome, ready.idempotency_key),
            address=address,
        )


def replies(sink: Sink) -> dict[str, dict[str, Any]]:
    return {r.key.decode(): json.loads(r.value) for r in sink.sent if r.key}


def committed(source: Source, tp: TopicPartition = TP) -> int | None:
    points = [commit[tp] for commit in source.commits if tp in commit]
    return points[-1] if points else None


def pipeline(
    source: Source, sink: Sink, processor: Processor, gate: CredentialGate, **limits: Any
) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    p = Pipeline(
        source,
        sink,
        processor,
        ServiceMetrics(registry),
        reply_topic="replies",
        gate=gate,
        limits=PipelineLimits(commit_interval_seconds=0.01, shutdown_grace_seconds=1, **limits),
    )
    return p, registry


async def started(p: Pipeline, partitions: set[TopicPartition]) -> tuple[asyncio.Event, Any]:
    stop = asyncio.Event()
    await p.on_partitions_assigned(partitions)
    return stop, asyncio.create_task(p.run(stop))


async def test_held_requests_take_no_slot_and_are_answered_failed_after_the_hold() -> None:
    """One worker slot: three requests of a rejected integration come first, yet the other
    integration's five are all answered meanwhile (each held request gave its slot back);
    after the hold each held one is answered FAILED, authentication_error, retryable, with
    Stripe's request id, and every offset is committed."""
    gate = CredentialGate(probe_interval_seconds=3600)
    gate.reject("billing", REJECTED, never_accepted)
    records = [record(i, "billing") for i in range(3)] + [record(i, "default") for i in range(3, 8)]
    source, sink = Source(records), Sink()
    processor = Processor(gate)
    p, registry = pipeline(
        source, sink, processor, gate, max_in_flight=1, credential_hold_seconds=0.5
    )
    stop, task = await started(p, {TP})
    await eventually(lambda: len(replies(sink)) == 5)
    assert set(replies(sink)) == {f"default-{i}" for i in range(3, 8)}
    assert committed(source) in (None, 0)  # offset 0 is held: nothing past it committed
    assert (
        registry.get_sample_value("stripe_consumer_credential_held", {"integration": "billing"})
        == 3
    )
    await eventually(lambda: committed(source) == 8)
    answered = replies(sink)
    for i in range(3):
        reply = answered[f"billing-{i}"]
        assert reply["status"] == "FAILED"
        assert reply["error"]["type"] == "authentication_error"
        assert reply["error"]["retryable"] is True
        assert reply["error"]["http_status"] == 401
        assert reply["error"]["request_id"] == "req_401"
        assert "Invalid API Key provided" in reply["error"]["message"]
    assert processor.peak_running == 1
    assert processor.processed.count(0) == 1  # held, never retried while the key is rejected
    assert (
        registry.get_sample_value("stripe_consumer_credential_held", {"integration": "billing"})
        == 0
    )
    stop.set()
    await task
    await gate.close()


async def test_held_requests_run_again_when_the_key_works() -> None:
    """The gate opens (a probe found the key works): the held requests run again and are
    answered COMPLETED; nothing is answered FAILED."""
    gate = CredentialGate(probe_interval_seconds=3600)
    gate.reject("billing", REJECTED, never_accepted)
    source, sink = Source([record(i, "billing") for i in range(4)]), Sink()
    processor = Processor(gate)
    p, _ = pipeline(source, sink, processor, gate, credential_hold_seconds=60)
    stop, task = await started(p, {TP})
    await eventually(lambda: sorted(processor.processed) == [0, 1, 2, 3])
    assert sink.sent == []
    gate.accept("billing")
    await eventually(lambda: committed(source) == 4)
    assert {reply["status"] for reply in replies(sink).values()} == {"COMPLETED"}
    assert sorted(processor.processed) == [0, 0, 1, 1, 2, 2, 3, 3]
    stop.set()
    await task


class Lane:
    """The meter batcher: answers `held` while the integration is rejected; with
    ``reject_first``, its first send meets a 401 (which closes the gate, as the executor
    does) and is answered `held`."""

    def __init__(self, gate: CredentialGate, *, reject_first: bool = False) -> None:
        self.gate = gate
        self.submitted = 0
        self.reject_next = reject_first

    def submit(
        self, event: MeterEvent, on_result: Callable[[MeterResult], None], owner: object
    ) -> None:
        self.submitted += 1
        if self.reject_next:
            self.reject_next = False
            self.gate.reject("billing", REJECTED, never_accepted)
        status = "held" if self.gate.is_rejected("billing") else "delivered"
        asyncio.get_running_loop().call_soon(on_result, MeterResult(status))  # type: ignore[arg-type]

    def withdraw(self, unwanted: Callable[[object], bool]) -> list[object]:
        return []  # every event is answered at once: nothing waits here unstarted


async def test_meter_lane_holds_usage_outside_the_batcher_then_answers_it() -> None:
    """Meter events of a rejected integration are held by the pipeline (the batcher is not
    even asked while the gate is closed); after the hold each is answered FAILED (here a
    reply is due) and committed: usage is never silently lost."""
    gate = CredentialGate(probe_interval_seconds=3600)
    source = Source([record(i, "billing", topic="meter") for i in range(3)])
    sink = Sink()
    lane = Lane(gate)
    gate.reject("billing", REJECTED, never_accepted)
    registry = CollectorRegistry()
    p = Pipeline(
        source,
        sink,
        Processor(gate),
        ServiceMetrics(registry),
        reply_topic="replies",
        meter_topic="meter",
        meter_batcher=lane,
        gate=gate,
        limits=PipelineLimits(commit_interval_seconds=0.01, credential_hold_seconds=0.3),
    )
    stop, task = await started(p, {METER_TP})
    await eventually(lambda: committed(source, METER_TP) == 3)
    assert lane.submitted == 0
    assert {r["status"] for r in replies(sink).values()} == {"FAILED"}
    assert {r["error"]["type"] for r in replies(sink).values()} == {"authentication_error"}
    stop.set()
    await task


async def test_meter_event_the_batcher_answers_held_is_sent_again_once_the_key_works() -> None:
    """A batch refused for the key (the gate closed while it was on its way) comes back
    `held`; when the key works it is submitted again and counted."""
    gate = CredentialGate(probe_interval_seconds=3600)
    source, sink = Source([record(0, "billing", topic="meter")]), Sink()
    lane = Lane(gate, reject_first=True)
    p = Pipeline(
        source,
        sink,
        Processor(gate),
        ServiceMetrics(CollectorRegistry()),
        reply_topic="replies",
        meter_topic="meter",
        meter_batcher=lane,
        gate=gate,
        limits=PipelineLimits(commit_interval_seconds=0.01),
    )
    stop, task = await started(p, {METER_TP})
    await eventually(lambda: lane.submitted == 1 and gate.is_rejected("billing"))
    await asyncio.sleep(0.05)  # several loop passes: held, not sent again, not answered
    assert (lane.submitted, committed(source, METER_TP), sink.sent) == (1, None, [])
    gate.accept("billing")
    await eventually(lambda: committed(source, METER_TP) == 1)
    assert lane.submitted == 2
    assert {r["status"] for r in replies(sink).values()} == {"COMPLETED"}
    stop.set()
    await task


async def test_revoke_does_not_wait_for_held_requests() -> None:
    """A revoked partition's held requests are dropped (uncommitted: the new owner receives
    them), and the revoke does not wait its timeout for them."""
    gate = CredentialGate(probe_interval_seconds=3600)
    gate.reject("billing", REJECTED, never_accepted)
    source, sink = Source([record(0, "billing")]), Sink()
    processor = Processor(gate)
    p, registry = pipeline(source, sink, processor, gate, revoke_timeout_seconds=60)
    stop, task = await started(p, {TP})
    await eventually(lambda: processor.processed == [0])
    await asyncio.wait_for(p.on_partitions_revoked({TP}), 5)
    assert (
        registry.get_sample_value("stripe_consumer_credential_held", {"integration": "billing"})
        == 0
    )
    assert committed(source) in (None, 0)
    stop.set()
    await task


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_hold_counts_from_first_held_and_the_bound_answers_the_longest_held_first() -> None:
    """Expiry counts from when first held (kept across a re-hold); beyond max_held the
    longest held go first; released only for an integration whose gate is open."""
    clock = Clock()
    gate = CredentialGate()
    held: HeldRequests[str] = HeldRequests(gate, hold_seconds=10, max_held=2, clock=clock)
    gate.reject("billing", REJECTED, never_accepted)
    first = held.park("a", integration="billing", partition=TP)
    clock.now = 105.0
    held.park("b", integration="billing", partition=TP)
    held.park("c", integration="billing", partition=TP, since=first - 1)  # held before
    released, expired = held.settle()
    assert (released, [h.item for h in expired]) == ([], ["c"])  # over the bound: oldest
    clock.now = 110.0
    released, expired = held.settle()
    assert [h.item for h in expired] == ["a"]  # 10 s since first held
    held.park("d", integration="default", partition=TopicPartition("requests", 1))
    released, expired = held.settle()
    assert ([h.item for h in released], expired) == (["d"], [])
    assert held.count() == 1
    assert held.count({TopicPartition("requests", 1)}) == 0
    assert [h.item for h in held.drop({TP})] == ["b"]
    assert len(held) == 0
    await gate.close()


def test_failure_after_the_hold_is_failed_authentication_error() -> None:
    """The answer for a request held too long: FAILED (retryable), authentication_error,
    Stripe's words and request id when the gate has them."""
    gate = CredentialGate()
    held: HeldRequests[str] = HeldRequests(gate, hold_seconds=900, max_held=10)
    failure = held.failure("billing")
    assert (failure.status, failure.detail.type, failure.detail.http_status) == (
        "FAILED",
        "authentication_error",
        401,
    )
    assert "900 s" in failure.detail.message
    assert "'billing'" in failure.detail.message

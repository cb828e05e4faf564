"""The producer's batches (``RecordSink.send_soon``) through the real broker: every record
acknowledged once by its batch's callback, each on the partition ``send`` gives its key,
and what a batch must not take (too large, a topic not known yet) left to ``send``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from consumer.kafka.admin import ensure_topics
from consumer.kafka.connection import KafkaConnection
from consumer.kafka.producer import RecordSink
from consumer.kafka.reader import read_to_end
from consumer.kafka.records import DeliveryFailed, OutboundRecord
from tests.support.service import Topics

pytestmark = pytest.mark.integration


async def _known(sink: RecordSink, topic: str) -> None:
    """Wait (with a deadline) until the sink knows the topic's partitions."""
    deadline = time.monotonic() + 30
    while not sink.send_soon(OutboundRecord(topic, b"probe", b"{}"), lambda _: None):
        assert time.monotonic() < deadline, f"{topic}'s partitions never became known"
        await sink.send(OutboundRecord(topic, b"probe", b"{}"))


async def test_batched_records_are_acknowledged_on_their_keys_partitions(
    stack: dict[str, str],
) -> None:
    """500 records queued in one turn are each acknowledged once (no failure), and each
    lands on the partition that ``send`` chose for the same key on a twin topic."""
    connection = KafkaConnection(stack["KAFKA_BOOTSTRAP_SERVERS"], client_id="tests")
    topics = Topics()
    batched, sent = f"{topics.replies}.batched", f"{topics.replies}.sent"
    await ensure_topics(connection, {batched: 3, sent: 3})
    sink = RecordSink(connection)
    await sink.start()
    try:
        await _known(sink, batched)
        acknowledged: dict[bytes, list[DeliveryFailed | None]] = {}
        all_done = asyncio.Event()
        keys = [f"task-{i}".encode() for i in range(500)]

        def on_ack(key: bytes) -> Callable[[DeliveryFailed | None], None]:
            def record(failure: DeliveryFailed | None) -> None:
                acknowledged.setdefault(key, []).append(failure)
                if len(acknowledged) == len(keys):
                    all_done.set()

            return record

        for key in keys:
            assert sink.send_soon(OutboundRecord(batched, key, b'{"x": 1}'), on_ack(key))
        for key in keys:
            await sink.send(OutboundRecord(sent, key, b'{"x": 1}'))
        await asyncio.wait_for(all_done.wait(), 30)
        assert all(outcomes == [None] for outcomes in acknowledged.values())
    finally:
        await sink.stop()
    batched_records = [r for r in await read_to_end(connection, batched) if r.key != b"probe"]
    by_send = {r.key: r.partition for r in await read_to_end(connection, sent)}
    assert sorted(r.key or b"" for r in batched_records) == sorted(keys)
    assert {r.key: r.partition for r in batched_records} == by_send
    assert len(set(by_send.values())) == 3  # the keys spread: the check means something


async def test_what_a_batch_must_not_take_is_left_to_send(stack: dict[str, str]) -> None:
    """A record over the batched size, or for a topic whose partitions the producer does
    not know yet, is not queued (False): ``send`` learns its own fate."""
    connection = KafkaConnection(stack["KAFKA_BOOTSTRAP_SERVERS"], client_id="tests")
    topics = Topics()
    await ensure_topics(connection, {topics.replies: 1})
    sink = RecordSink(connection)
    await sink.start()
    try:
        called: list[DeliveryFailed | None] = []
        unknown = OutboundRecord(f"{topics.replies}.never-sent-to", b"k", b"{}")
        assert not sink.send_soon(unknown, called.append)
        await _known(sink, topics.replies)
        large = OutboundRecord(topics.replies, b"k", b"x" * (512 * 1024))
        assert not sink.send_soon(large, called.append)
        await asyncio.sleep(0)  # a queued record would have started its flush here
        assert called == []
    finally:
        await sink.stop()


async def test_records_queued_over_many_turns_keep_each_keys_order(stack: dict[str, str]) -> None:
    """2,000 records for 50 keys, queued over 40 loop turns (so later ones join batches
    aiokafka has yet to take, or wait for the next): each acknowledged once, and on the topic
    every key's records are in the order they were queued."""
    connection = KafkaConnection(stack["KAFKA_BOOTSTRAP_SERVERS"], client_id="tests")
    topic = f"{Topics().replies}.ordered"
    await ensure_topics(connection, {topic: 3})
    sink = RecordSink(connection)
    await sink.start()
    outcomes: list[DeliveryFailed | None] = []
    try:
        await _known(sink, topic)
        for turn in range(40):
            for n in range(50):
                value = f'{{"seq": {turn * 50 + n}}}'.encode()
                assert sink.send_soon(
                    OutboundRecord(topic, f"key-{n}".encode(), value), outcomes.append
                )
            await asyncio.sleep(0)
        deadline = time.monotonic() + 30
        while len(outcomes) < 2_000:
            assert time.monotonic() < deadline, f"{len(outcomes)} of 2,000 acknowledged"
            await asyncio.sleep(0.05)
        assert outcomes == [None] * 2_000
    finally:
        await sink.stop()
    records = [r for r in await read_to_end(connection, topic) if r.key != b"probe"]
    by_key: dict[bytes, list[int]] = {}
    for r in records:
        by_key.setdefault(r.key or b"", []).append(int((r.value or b"").split(b":")[1][:-1]))
    assert len(records) == 2_000
    assert all(seqs == sorted(seqs) and len(seqs) == 40 for seqs in by_key.values())

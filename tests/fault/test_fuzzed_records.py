"""10,000 hostile records through the real broker: random bytes, deep nesting, huge strings,
every field of every operation with every wrong type, control characters, keyed and
unkeyed. The service stays up, answers or dead-letters every keyed record, commits past
every record, answers a normal request afterwards, and logs no traceback.

The records come from a seeded generator (the seed is in the test), so a failure replays.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from consumer.contract.examples import EXAMPLE_PARAMETERS
from consumer.contract.requests import REQUEST_TYPES
from consumer.kafka.producer import RecordSink
from consumer.kafka.reader import end_offsets
from consumer.kafka.records import InboundRecord, OutboundRecord
from tests.fault.conftest import Harness

SEED = 20261204
TOTAL = 10_000
METER_SHARE = 10  # one record in ten goes to the meter topic
MAX_RECORD_BYTES = 262_144  # the service's limit in this test: larger records are refused

WRONG_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    1.5,
    -0.0,
    1e308,
    2**70,
    "",
    "x" * 6000,
    [],
    {},
    [1, "a", None],
    {"nested": {"deeper": [1, {"x": None}]}},
    "\x00",
    "cus_1\n",
    "usd\n",
    "\u2028line separator",
    "\x7f\x1b[31m",
    "acct_1\r\n",
    "9" * 40,
    "1e999",
    "-5",
)


def field_names(request_type: type[Any]) -> tuple[str, ...]:
    return tuple(field.encode_name for field in msgspec.structs.fields(request_type))


def own_objects(request: dict[str, Any], serial: int) -> dict[str, Any]:
    """The request with object ids of its own: writes to one object are serialised (one
    lock per object), and thousands of them aimed at the example's one customer would test
    that queue, not the decoder."""
    return {
        name: f"{value}{serial}" if name.endswith("_id") and isinstance(value, str) else value
        for name, value in request.items()
    }


def every_field_wrong(rng: random.Random) -> Iterator[dict[str, Any]]:
    """Each operation's valid example with one field (its own, a common one or a Conductor
    one) replaced by each wrong value in turn."""
    serial = 0
    for request_type in REQUEST_TYPES:
        operation = str(request_type.__struct_config__.tag)
        base = {"operation": operation, **EXAMPLE_PARAMETERS[operation]}
        for name in field_names(request_type):
            for value in WRONG_VALUES:
                serial += 1
                yield {**own_objects(base, serial), name: value}
        yield {**base, "operation": rng.choice([None, 7, [], "", "create_charge\n", "nope"])}
        yield {**base, "ammount": 1}  # an unknown field


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def random_record(rng: random.Random) -> bytes:
    """One hostile record of a randomly chosen kind."""
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 2000))
    if kind == 1:
        return deep(rng.choice([10, 1000, 100_000]))
    if kind == 2:
        nested = b'{"a":' * 5000 + b"1" + b"}" * 5000
        return b'{"operation":"create_customer","email":"a@b.co","name":"n","metadata":' + (
            nested + b"}"
        )
    if kind == 3:  # huge strings, some past the service's record limit
        size = rng.choice([100_000, 200_000, MAX_RECORD_BYTES + 1000])
        return msgspec.json.encode(
            {"operation": "create_customer", "email": "a@b.co", "name": "x" * size}
        )
    if kind == 4:  # not UTF-8 inside an otherwise valid request
        return b'{"operation":"get_balance","taskId":"\xff\xfe"}'
    if kind == 5:  # lone surrogates, escapes, duplicate keys
        return rng.choice(
            [
                b'{"operation":"create_customer","email":"a@b.co","name":"\\ud800"}',
                b'{"operation":"get_balance","operation":"create_charge"}',
                b'{"operation":"get_customer","customer_id":"cus_\\u0000x"}',
            ]
        )
    if kind == 6:  # JSON that is not an object
        return rng.choice([b"null", b"42", b'"text"', b"[1,2]", b"true", b"1e999", b""])
    if kind == 7:  # random JSON-ish junk
        alphabet = b'{}[]":,0123456789abcdefnulltrue\\ \n\t'
        return bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 300)))
    # control characters in every identifier-like field of a meter event
    event = dict(EXAMPLE_PARAMETERS["create_meter_event"], operation="create_meter_event")
    field = rng.choice(["event_name", "identifier", "customer_id", "integration", "reply_topic"])
    event[field] = "id" + chr(rng.choice([0, 9, 10, 13, 27, 127, 0x85, 0x2028])) + "x"
    return msgspec.json.encode(event)


def fuzzed_records(harness: Harness) -> tuple[list[OutboundRecord], set[str]]:
    """(the records, the keys of the keyed ones on the request topic)."""
    rng = random.Random(SEED)
    values = [msgspec.json.encode(v) for v in every_field_wrong(rng)]
    values += [random_record(rng) for _ in range(TOTAL - len(values))]
    rng.shuffle(values)
    records, keyed = [], set()
    for i, value in enumerate(values):
        topic = harness.topics.meter if i % METER_SHARE == 0 else harness.topics.requests
        key = f"fuzz-{i:05d}" if rng.random() < 0.7 else None
        if key is not None and topic == harness.topics.requests:
            keyed.add(key)
        records.append(OutboundRecord(topic, key.encode() if key else None, value))
    return records, keyed


async def publish(harness: Harness, records: list[OutboundRecord]) -> None:
    sink = RecordSink(harness.client.connection, linger_ms=20)
    await sink.start()
    try:
        for start in range(0, len(records), 500):
            await asyncio.gather(*(sink.send(r) for r in records[start : start + 500]))
    finally:
        await sink.stop()


async def everything_in(harness: Harness, topic: str) -> list[InboundRecord]:
    """Every record the topic holds now."""
    ends = await end_offsets(harness.client.connection, topic)
    return await harness.client.read(topic, sum(ends.values()), timeout_s=60)


@pytest.mark.timeout(300)
async def test_ten_thousand_fuzzed_records(harness: Harness) -> None:
    """Alive, every keyed request record answered or dead-lettered, every record committed,
    a normal request answered afterwards, no traceback in the log."""
    began = time.monotonic()
    records, keyed = fuzzed_records(harness)
    assert len(records) == TOTAL
    values = {r.key.decode(): r.value[:300] for r in records if r.key}
    service = harness.service(CONSUMER_MAX_RECORD_BYTES=str(MAX_RECORD_BYTES)).start()
    await publish(harness, records)

    async def all_committed() -> bool:
        return await harness.all_committed(harness.topics.requests) and (
            await harness.all_committed(harness.topics.meter)
        )

    try:
        await harness.wait_for(all_committed, 150, "every fuzzed record answered and committed")
    finally:  # on a timeout too: say which records were never answered
        replies = await everything_in(harness, harness.topics.replies)
        dead = await everything_in(harness, harness.topics.dlq)
        answered_keys = {r.key.decode() for r in (*replies, *dead) if r.key}
        unanswered = {key: value for key, value in values.items() if key in keyed - answered_keys}
        assert unanswered == {}
    answered = time.monotonic()
    assert service.process is not None
    assert service.process.poll() is None  # alive
    assert service.http_get("/healthz")[0] == 200
    dead_keys = {r.key.decode() for r in dead if r.key}

    await harness.client.publish({"operation": "get_balance"}, key="after-the-fuzz")
    after = await harness.client.replies(1, keys={"after-the-fuzz"}, timeout_s=60)
    assert after["after-the-fuzz"]["status"] == "COMPLETED"

    log = "\n".join(service.log_lines())
    assert "Traceback" not in log
    assert '"exception":' not in log
    statuses: dict[str, int] = {}
    for record in replies:
        status = json.loads(record.value or b"{}").get("status", "?")
        statuses[status] = statuses.get(status, 0) + 1
    print(  # noqa: T201  (the figures the README reports)
        f"\n{TOTAL} fuzzed records answered and committed in {answered - began:.0f} s; "
        f"{len(keyed)} keyed request records: replies by status {statuses}, "
        f"{len(dead)} dead-lettered ({len(dead_keys & keyed)} of them keyed)"
    )

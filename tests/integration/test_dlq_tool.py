"""`python -m consumer dlq` against the real broker and the running service: a replay of a
request already answered is answered from memory (no second Stripe call), and a record that
fails again returns to the DLQ with its replay count, until `replay` refuses it."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from consumer.__main__ import main
from consumer.contract.idempotency import RecordCoordinates
from consumer.engine.replies import dead_letter_record
from consumer.kafka.producer import RecordSink
from consumer.kafka.reader import read_to_end
from consumer.kafka.records import InboundRecord
from tests.support.charges import answered_charge
from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import StandIn, standin_request

pytestmark = pytest.mark.integration


async def dlq_cli(
    stack: dict[str, str],
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, str]:
    """Run `python -m consumer dlq ...` (its own event loop, in a thread); exit code, stdout."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", stack["KAFKA_BOOTSTRAP_SERVERS"])
    for name, value in topics.environ().items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["dlq", *args])
    return code, capsys.readouterr().out


async def test_replayed_request_already_answered_is_not_executed_again(
    stack: dict[str, str],
    standin: StandIn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A charge answered once, whose copy sits in the DLQ: the dry run publishes nothing; the
    replay is answered from the reply memory (deduplicated, same charge) and Stripe was
    called once in all."""
    async with answered_charge(stack, standin, amount=1500) as charge:
        client, topics, task_id, first = charge.client, charge.topics, charge.task_id, charge.reply
        calls_before = (await standin_request(standin.url, "GET", "/_standin/stats"))["calls"]
        [source] = await client.read(topics.requests, 1)
        await put_in_dlq(client, topics, source)

        code, out = await dlq_cli(stack, topics, monkeypatch, capsys, "replay")
        assert code == 0
        assert f"would replay 0:0 (internal_error) to {topics.requests}" in out
        code, out = await dlq_cli(stack, topics, monkeypatch, capsys, "replay", "--execute")
        assert code == 0
        assert "replayed: 1; refused: 0" in out
        records = await client.read(topics.replies, 1, keys={task_id}, per_key=2)
        requests = await read_to_end(client.connection, topics.requests)
    assert len(requests) == 2  # the original and the replay: the dry run published nothing
    second = msgspec.json.decode(records[-1].value or b"{}")
    assert first["status"] == "COMPLETED"
    assert second["status"] == "COMPLETED"
    assert second["deduplicated"] is True
    assert second["output"]["id"] == first["output"]["id"]
    stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    assert stats["calls"] == calls_before
    assert stats["executions"] == {first["idempotency_key"]: 1}


async def put_in_dlq(client: KafkaClient, topics: Topics, source: InboundRecord) -> None:
    """The DLQ record the service writes when processing fails (its one builder)."""
    coordinates = RecordCoordinates(source.topic, source.partition, source.offset)
    letter = dead_letter_record(
        topics.dlq, source, coordinates, reason="internal_error", detail="RuntimeError"
    )
    sink = RecordSink(client.connection)
    await sink.start()
    try:
        await sink.send(letter)
    finally:
        await sink.stop()


async def test_record_that_fails_again_returns_to_the_dlq_with_its_count(
    stack: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not JSON: dead-lettered, replayed, dead-lettered again with `dlq.replay-count: 1` and
    the trail; `list` and `show` say so; past `--max-replays` the replay is refused (exit 4)
    and nothing is published."""
    topics = Topics()
    async with (
        KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client,
        running_service(service_settings(stack, topics)),
    ):
        await client.publish(b"{not json", key="task-broken")
        await client.read(topics.dlq, 1)
        code, out = await dlq_cli(stack, topics, monkeypatch, capsys, "replay", "--execute")
        assert (code, out.strip()) == (0, "replayed: 1; refused: 0")
        [original, again] = await client.read(topics.dlq, 2)

        code, out = await dlq_cli(stack, topics, monkeypatch, capsys, "list", "--json")
        summary = json.loads(out)
        code_show, shown = await dlq_cli(stack, topics, monkeypatch, capsys, "show", "0:1")
        code_refused, refused = await dlq_cli(
            stack, topics, monkeypatch, capsys, "replay", "0:1", "--execute", "--max-replays", "1"
        )
        code_none, _ = await dlq_cli(stack, topics, monkeypatch, capsys, "list", "--reason", "x")
        requests = await read_to_end(client.connection, topics.requests)
    headers = dict(again.headers)
    assert again.value == original.value == b"{not json"
    assert again.key == b"task-broken"
    assert headers["dlq.reason"] == b"not_json"
    assert headers["dlq.replay-count"] == b"1"
    assert headers["dlq.replayed-from"] == f"{topics.dlq}:0:0".encode()
    assert headers["dlq.source.topic"] == topics.requests.encode()
    assert code == 0
    assert summary["total"] == 2
    assert summary["reasons"][0]["reason"] == "not_json"
    assert summary["reasons"][0]["count"] == 2
    assert code_show == 0
    assert "dlq.replay-count: 1" in shown
    assert "decoded error: not_json: The record value is not JSON" in shown
    assert code_refused == 4
    assert "refused 0:1: replayed 1 times already (--max-replays 1)" in refused
    assert code_none == 3
    assert len(requests) == 2  # the original and the one replay: the refusal published nothing

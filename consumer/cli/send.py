"""Producer-side helpers: publish requests as Conductor would and wait for their replies.

Used by ``python -m consumer send``, the demo and the tests, so they exercise the service the
way a producer does: through Kafka only.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from consumer.kafka.admin import ensure_topics
from consumer.kafka.connection import KafkaConnection
from consumer.kafka.producer import RecordSink
from consumer.kafka.reader import topic_reader
from consumer.kafka.records import OutboundRecord
from consumer.settings import ClientSettings, load_client_settings


def client_connection(settings: ClientSettings) -> KafkaConnection:
    return KafkaConnection(
        settings.kafka_bootstrap_servers, settings.kafka_security, "stripe-consumer-tools"
    )


async def publish_and_collect(
    settings: ClientSettings,
    requests: Mapping[str, dict[str, Any]],
    *,
    topic: str | None = None,
    timeout_s: float = 60.0,
) -> dict[str, dict[str, Any]]:
    """Publish each request with its key (the dict key, Conductor's taskId) and return the
    reply for each key. Reading starts at the reply topic's end, before publishing."""
    connection = client_connection(settings)
    target = topic or settings.request_topics[0]
    await ensure_topics(connection, {target: 3, settings.reply_topic: 3, settings.dlq_topic: 1})
    async with topic_reader(connection, settings.reply_topic, from_end=True) as replies:
        sink = RecordSink(connection)
        await sink.start()
        try:
            for key, request in requests.items():
                await sink.send(OutboundRecord(target, key.encode(), msgspec.json.encode(request)))
        finally:
            await sink.stop()
        wanted = set(requests)

        def answered(records: Iterable[Any]) -> bool:
            return wanted <= {r.key.decode() for r in records if r.key is not None}

        records = await replies.collect(answered, timeout_s=timeout_s)
    return {
        r.key.decode(): json.loads(r.value)
        for r in records
        if r.key is not None and r.value is not None and r.key.decode() in wanted
    }


async def send_one(request_text: str, key: str | None, timeout_s: float) -> int:
    """``python -m consumer send '{"operation": "get_balance"}'``: print the reply."""
    request = json.loads(request_text)
    settings = load_client_settings(os.environ)
    task_key = key or str(uuid.uuid4())
    try:
        replies = await publish_and_collect(settings, {task_key: request}, timeout_s=timeout_s)
    except TimeoutError:
        print(f"no reply within {timeout_s}s (is the service running?)", file=sys.stderr)
        return 1
    print(json.dumps(replies[task_key], indent=2))
    return 0 if replies[task_key].get("status") == "COMPLETED" else 1

"""The topics the service creates at start-up (CONSUMER_CREATE_TOPICS, the default; the
chart's `topics.create`): its own, and the reply topic of Conductor's KAFKA_PUBLISH + WAIT
style (`<replies>.wait`, README "Two producer styles"), which nothing created before."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.kafka.admin import ensure_topics
from consumer.kafka.connection import KafkaConnection
from tests.support.process import ServiceProcess
from tests.support.service import Topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_the_service_creates_its_topics_and_the_wait_reply_topic(
    stack: dict[str, str], tmp_path: Path
) -> None:
    """Started where none of its topics exist: once ready, every one of them exists, the
    `.wait` reply topic included (creating them again creates nothing)."""
    topics = Topics()
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": stack["KAFKA_BOOTSTRAP_SERVERS"],
        "STRIPE_API_BASE": stack["STRIPE_API_BASE"],
        "STRIPE_API_KEY": "sk_test_123",
        "CONSUMER_TOPIC_PARTITIONS": "1",
        **topics.environ(),
    }
    service = ServiceProcess(environ, tmp_path / "service.log").start()
    connection = KafkaConnection(stack["KAFKA_BOOTSTRAP_SERVERS"], client_id="tests")
    try:
        names = (
            topics.requests,
            topics.meter,
            topics.replies,
            topics.dlq,
            topics.meter_errors,
            f"{topics.replies}.wait",
        )
        assert await ensure_topics(connection, dict.fromkeys(names, 1)) == []
    finally:
        service.close()

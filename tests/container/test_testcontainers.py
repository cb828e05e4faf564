"""An integration module run the conventional way, through containers that testcontainers
starts and stops (Kafka, Redis and stripe-mock images built here with podman, reached through
podman's Docker-compatible socket): the service in-process, as in tests/integration, with
every part it talks to in a container. A contributor with Docker runs the same code."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack

import pytest
import pytest_asyncio

from consumer.kafka.admin import committed_offsets
from consumer.kafka.reader import end_offsets
from tests.support.service import KafkaClient, Topics, running_service, service_settings
from tests.support.stack import StandIn, standin_request

pytestmark = [pytest.mark.container, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def containers(
    docker_api: str, kafka_image: str, redis_image: str, stripe_mock_image: str
) -> Iterator[dict[str, str]]:
    """Kafka, Redis and stripe-mock, each started by testcontainers and removed by it after
    the module (checked: none of them is left)."""
    from testcontainers.community.redis import RedisContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    from tests.container.kafka_container import ApacheKafkaContainer

    with ExitStack() as started:
        kafka = started.enter_context(ApacheKafkaContainer(kafka_image))
        redis = started.enter_context(RedisContainer(redis_image))
        mock = started.enter_context(
            DockerContainer(stripe_mock_image)
            .with_exposed_ports(12111)
            .waiting_for(LogMessageWaitStrategy("Listening for HTTP"))
        )
        host = mock.get_container_host_ip()
        ids = [c.get_container_id() for c in (kafka, redis, mock)]
        yield {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_server(),
            "REDIS_URL": f"redis://{host}:{redis.get_exposed_port(6379)}/0",
            "STRIPE_API_BASE": f"http://{host}:{mock.get_exposed_port(12111)}",
        }
    client = DockerContainer(stripe_mock_image).get_docker_client().client
    assert not [c for c in client.containers.list(all=True) if c.id in ids]


@pytest_asyncio.fixture(scope="module")
async def client(containers: dict[str, str]) -> AsyncIterator[KafkaClient]:
    async with KafkaClient(containers["KAFKA_BOOTSTRAP_SERVERS"], Topics()) as kafka:
        yield kafka


async def test_requests_are_answered_through_the_containers(
    containers: dict[str, str], client: KafkaClient
) -> None:
    """The broker in a container: a request is answered by the stripe-mock container, a
    record that is not JSON is dead-lettered, and the Redis container serves as the ledger."""
    settings = service_settings(
        containers, client.topics, CONSUMER_REDIS_URL=containers["REDIS_URL"]
    )
    good, bad = f"task-{uuid.uuid4().hex[:8]}", f"task-{uuid.uuid4().hex[:8]}"
    async with running_service(settings):
        await client.publish({"operation": "get_balance", "taskId": good}, key=good)
        await client.publish(b"\xff", key=bad)
        replies = await client.replies(2, keys={good, bad})
        dead = await client.read(client.topics.dlq, 1, keys={bad})
    assert replies[good]["status"] == "COMPLETED"
    assert replies[good]["output"]["object"] == "balance"
    assert replies[bad]["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert ("dlq.reason", b"not_utf8") in dead[0].headers


async def wait_committed(client: KafkaClient, topic: str, timeout_s: float = 60) -> None:
    """Until the group has committed every record of the topic."""
    group = client.topics.environ()["CONSUMER_GROUP_ID"]
    deadline = time.monotonic() + timeout_s
    while True:
        committed = await committed_offsets(client.connection, group)
        ends = await end_offsets(client.connection, topic)
        if all(committed.get(tp) == end for tp, end in ends.items()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic}: not every record committed")
        await asyncio.sleep(0.1)


async def test_the_meter_ledger_in_the_redis_container_outlives_the_service(
    containers: dict[str, str], client: KafkaClient, standin: StandIn
) -> None:
    """Meter events counted by one service instance are not sent again by a fresh one (no
    memory of its own) that receives the same identifiers: the ledger lives in Redis."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    settings = service_settings(
        containers,
        client.topics,
        STRIPE_API_BASE=standin.url,
        STRIPE_METER_EVENTS_BASE=standin.url,
        STRIPE_API_KEY="sk_test_51ContainerTier",
        STRIPE_RATE_LIMIT="100000",
        CONSUMER_REDIS_URL=containers["REDIS_URL"],
    )
    run = uuid.uuid4().hex[:8]
    identifiers = [f"use-{run}-{i}" for i in range(100)]

    async def publish_all() -> None:
        for i, identifier in enumerate(identifiers):
            event = {
                "operation": "create_meter_event",
                "event_name": "api_requests",
                "customer_id": f"cus_{i % 7:05d}",
                "identifier": identifier,
            }
            await client.publish(event, key=f"producer-{i}", topic=client.topics.meter)

    for _ in range(2):  # the second time, a fresh service instance
        await publish_all()
        async with running_service(settings) as service:
            await wait_committed(client, client.topics.meter)
            deduplicated = service.registry.get_sample_value(
                "stripe_consumer_deduplicated_total", {"kind": "meter_identifier"}
            )
    stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    assert {i: stats["meter_deliveries"].get(i) for i in identifiers} == dict.fromkeys(
        identifiers, 1
    )
    assert deduplicated == len(identifiers)

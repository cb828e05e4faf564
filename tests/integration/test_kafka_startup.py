"""Kafka not reachable at start-up (compose starts the service before the broker; on
Kubernetes it would crash-loop): the service waits with backoff for
KAFKA_STARTUP_TIMEOUT_SECONDS while /healthz and /readyz say why, connects by itself when
the broker comes, and otherwise exits 2 with one line naming KAFKA_BOOTSTRAP_SERVERS."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import ServiceProcess, free_port
from tests.support.service import KafkaClient, Topics
from tests.support.startup import Exit, assert_configuration_error
from tests.support.tcp_forwarder import TcpForwarder

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def environ(stack: dict[str, str], topics: Topics, bootstrap: str, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "STRIPE_API_BASE": stack["STRIPE_API_BASE"],
        "STRIPE_API_KEY": "sk_test_123",
        **topics.environ(),
        **extra,
    }


def wait_for_endpoint(service: ServiceProcess, path: str, status: int, text: str) -> str:
    """The endpoint's body once it answers ``status`` with ``text`` in it."""
    deadline = time.monotonic() + 30
    seen: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        try:
            seen = service.http_get(path)
        except OSError:
            seen = (0, "")
        if seen[0] == status and text in seen[1]:
            return seen[1]
        time.sleep(0.1)
    raise TimeoutError(f"{path} never answered {status} with {text!r}; last {seen}")


@pytest.fixture
def forwarder(stack: dict[str, str]) -> Iterator[TcpForwarder]:
    host, port = stack["KAFKA_BOOTSTRAP_SERVERS"].split(",")[0].rsplit(":", 1)
    forward = TcpForwarder((host, int(port)))
    try:
        yield forward
    finally:
        forward.close()


def test_unreachable_kafka_is_waited_for_then_exit_2(stack: dict[str, str], tmp_path: Path) -> None:
    """No broker at the address: alive and not ready, both saying what it waits for; after
    the bounded wait, exit 2 with one error line naming KAFKA_BOOTSTRAP_SERVERS."""
    nowhere = f"127.0.0.1:{free_port()}"
    service = ServiceProcess(
        environ(stack, Topics(), nowhere, KAFKA_STARTUP_TIMEOUT_SECONDS="8"),
        tmp_path / "service.log",
    ).launch()
    try:
        alive = wait_for_endpoint(service, "/healthz", 200, "waiting for Kafka")
        ready = wait_for_endpoint(service, "/readyz", 503, "KAFKA_BOOTSTRAP_SERVERS")
        assert process_code(service, 60) == 2
    finally:
        service.close()
    assert nowhere in json.loads(alive)["status"]
    assert "no Kafka broker answers" in json.loads(ready)["status"]
    result = Exit(2, service.log_path.read_text())
    error = assert_configuration_error(result, "KAFKA_BOOTSTRAP_SERVERS", "gave up after 8 s")
    assert nowhere in error["cause"]


async def test_kafka_that_comes_late_is_joined(
    stack: dict[str, str], forwarder: TcpForwarder, tmp_path: Path
) -> None:
    """The broker's address refuses connections at start-up, then opens: the service
    connects by itself, becomes ready and answers, no restart needed."""
    topics = Topics()
    bootstrap = f"127.0.0.1:{forwarder.port}"
    service = ServiceProcess(environ(stack, topics, bootstrap), tmp_path / "service.log").launch()
    try:
        wait_for_endpoint(service, "/readyz", 503, "waiting for Kafka")
        forwarder.open()
        service.wait_ready(60)
        async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], topics) as client:
            key = f"late-{uuid.uuid4().hex[:6]}"
            await client.publish({"operation": "get_balance"}, key=key)
            replies = await client.replies(1, keys={key}, timeout_s=30)
        assert replies[key]["status"] == "COMPLETED"
        assert service.terminate() == 0
    finally:
        service.close()
    warnings = [line for line in service.log_lines() if '"waiting for Kafka"' in line]
    assert len(warnings) == 1  # said once, not once per retry


def process_code(service: ServiceProcess, timeout_s: float) -> int:
    assert service.process is not None
    return service.process.wait(timeout_s)

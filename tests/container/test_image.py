"""The service's image, built here from the project's Dockerfile, run as a platform runs it
(read-only root, no tmpfs, no capabilities) against the local stack's real broker."""

from __future__ import annotations

import asyncio
import json
import re
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio

from consumer.kafka.admin import committed_offsets
from consumer.kafka.reader import end_offsets
from tests.container.support import Podman, ServiceContainer
from tests.support.service import KafkaClient, Topics
from tests.support.stack import StandIn, standin_request

pytestmark = [pytest.mark.container, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
GRACE_SECONDS = 20  # CONSUMER_SHUTDOWN_GRACE_SECONDS in the drain test
STOP_TIMEOUT_SECONDS = 25  # what the platform waits before SIGKILL (compose: 30 s for 25 s)


@pytest.fixture(scope="module")
def podman(images: ModuleType) -> Podman:
    return Podman(images)


@pytest_asyncio.fixture(scope="module")
async def client(stack: dict[str, str]) -> AsyncIterator[KafkaClient]:
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], Topics()) as kafka:
        yield kafka


def stack_environ(stack: dict[str, str], topics: Topics, **overrides: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": stack["KAFKA_BOOTSTRAP_SERVERS"],
        "STRIPE_API_BASE": stack["STRIPE_API_BASE"],
        "STRIPE_API_KEY": "sk_test_123",
        "CONSUMER_COMMIT_INTERVAL_SECONDS": "0.2",
        **topics.environ(),
        **overrides,
    }


@pytest.fixture(scope="module")
def running(
    podman: Podman, service_image: str, stack: dict[str, str], client: KafkaClient
) -> Iterator[ServiceContainer]:
    """One container of the image, against the stack's broker and stripe-mock."""
    container = ServiceContainer(podman, service_image, stack_environ(stack, client.topics))
    try:
        container.start()
        yield container
    finally:
        container.remove()


async def test_image_answers_a_request_and_dead_letters_a_bad_record(
    running: ServiceContainer, client: KafkaClient
) -> None:
    """Through the real broker: a request gets its COMPLETED reply from Stripe's mock; a
    record that is not JSON goes to the DLQ unchanged, and its key gets a terminal reply."""
    good, bad = f"task-{uuid.uuid4().hex[:8]}", f"task-{uuid.uuid4().hex[:8]}"
    await client.publish(
        {"operation": "create_customer", "email": "a@example.com", "name": "A", "taskId": good},
        key=good,
    )
    await client.publish(b"{not json", key=bad)
    replies = await client.replies(2, keys={good, bad})
    assert replies[good]["status"] == "COMPLETED"
    assert replies[good]["output"]["id"].startswith("cus_")
    assert replies[bad]["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert replies[bad]["error"]["param"] == "$"
    dead = await client.read(client.topics.dlq, 1, keys={bad})
    assert dead[0].value == b"{not json"
    assert ("dlq.reason", b"not_json") in dead[0].headers


def test_runs_as_uid_10001_with_nothing_writable(running: ServiceContainer, podman: Podman) -> None:
    """The service's process runs as uid 10001 on a read-only root with no tmpfs at all
    (not even podman's default /tmp), and still serves: the image needs no writable path."""
    state = running.state()
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    assert not state["HostConfig"].get("Tmpfs")
    assert not [m for m in state.get("Mounts", []) if m.get("Type") == "tmpfs"]
    top = podman.run("top", running.name, "user", "args").splitlines()[1:]
    assert top
    assert {line.split(None, 1)[0] for line in top} == {"stripe-consumer"}
    assert podman.run("exec", running.name, "id", "-u", "stripe-consumer").strip() == "10001"
    probe = podman.call("exec", running.name, "touch", "/tmp/probe")
    assert probe.returncode != 0
    assert "Read-only file system" in probe.stderr


def test_serves_healthz_and_readyz(running: ServiceContainer) -> None:
    """Liveness and readiness answer 200 from the container (the chart's probes, compose's
    health check); /metrics carries the service's series."""
    assert running.http_get("/healthz") == (200, json.dumps({"status": "ok"}))
    status, body = running.http_get("/readyz")
    assert status == 200, body
    status, metrics = running.http_get("/metrics")
    assert status == 200
    assert "stripe_consumer_build_info" in metrics


def charges(count: int) -> dict[str, dict[str, Any]]:
    run = uuid.uuid4().hex[:8]
    return {
        f"term-{run}-{i}": {
            "operation": "create_charge",
            "amount": 100 + i,
            "currency": "usd",
            "source": "tok_visa",
            "taskId": f"term-{run}-{i}",
        }
        for i in range(count)
    }


async def wait_for_calls(standin: StandIn, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (await standin_request(standin.url, "GET", "/_standin/stats"))["calls"] < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} Stripe calls in flight")
        await asyncio.sleep(0.1)


async def test_sigterm_drains_in_flight_work_and_exits_0_within_the_grace_period(
    podman: Podman, service_image: str, stack: dict[str, str], standin: StandIn
) -> None:
    """SIGTERM to the container (`podman stop`) while every Stripe call is in flight: the
    Python process (PID 1) gets it, finishes them, replies, commits and exits 0 before the
    platform's SIGKILL."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    await standin_request(standin.url, "POST", "/_standin/config", {"latency_ms": 1500})
    requests = charges(20)
    async with KafkaClient(stack["KAFKA_BOOTSTRAP_SERVERS"], Topics()) as kafka:
        for key, request in requests.items():
            await kafka.publish(request, key=key)
        environ = stack_environ(
            stack,
            kafka.topics,
            STRIPE_API_BASE=standin.url,
            STRIPE_API_KEY="sk_test_51ContainerTier",
            STRIPE_RATE_LIMIT="100000",
            CONSUMER_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        )
        container = ServiceContainer(podman, service_image, environ)
        try:
            container.start()
            await wait_for_calls(standin, len(requests), timeout_s=30)
            assert container.stop(STOP_TIMEOUT_SECONDS) == 0, container.logs()
        finally:
            container.remove()
            await standin_request(standin.url, "POST", "/_standin/reset")
        replies = await kafka.replies(len(requests), keys=set(requests), timeout_s=10)
        assert {reply["status"] for reply in replies.values()} == {"COMPLETED"}
        group = kafka.topics.environ()["CONSUMER_GROUP_ID"]
        committed = await committed_offsets(kafka.connection, group)
        ends = await end_offsets(kafka.connection, kafka.topics.requests)
        assert {tp: committed.get(tp) for tp in ends} == ends


def dev_dependencies() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = (
        re.split(r"[<>=!~;\[ ]", spec)[0]
        for spec in pyproject["project"]["optional-dependencies"]["dev"]
    )
    return {name.lower().replace("_", "-") for name in names}


PROBE = """
import importlib.metadata, json, os, shutil
print(json.dumps({
    "distributions": sorted(d.metadata["Name"].lower().replace("_", "-")
                            for d in importlib.metadata.distributions()),
    "tools": [t for t in ("gcc", "cc", "c++", "make", "git") if shutil.which(t)],
    "leftovers": [p for p in ("/src", "/wheels", "/root/.cache/pip") if os.path.exists(p)],
}))
"""


def test_image_carries_no_dev_tools(podman: Podman, service_image: str) -> None:
    """The image holds the service and its runtime dependencies: none of the dev extra
    (pytest, mypy, ruff, testcontainers, ...), no compiler or git, no build leftovers."""
    found = json.loads(
        podman.run(
            "run", "--rm", "--read-only", "--entrypoint", "python", service_image, "-c", PROBE
        )
    )
    assert "stripe-consumer" in found["distributions"]
    assert "aiokafka" in found["distributions"]
    assert dev_dependencies() & set(found["distributions"]) == set()
    assert found["tools"] == []
    assert found["leftovers"] == []


SECRET_SHAPES = re.compile(
    r"\b(sk|rk)_(test|live)_|://[^/\s:@]+:[^/\s@]+@|password|passwd=|token=", re.IGNORECASE
)
IMAGE_ENV = {
    "PATH", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
    "CONSUMER_HTTP_HOST", "CONSUMER_HTTP_PORT",
}  # fmt: skip


def test_no_secret_in_the_image_layers_or_environment(
    podman: Podman, service_image: str, base_image: str
) -> None:
    """`podman history` and `podman inspect` show no key, password or credentialed URL; the
    environment is only the documented one; the build host's CA bundle, mounted into the
    build, never landed in a layer (the image's is the base's own)."""
    history = podman.json("history", "--no-trunc", "--format", "json", service_image)
    config = podman.json("image", "inspect", service_image)[0]["Config"]
    assert not SECRET_SHAPES.search(json.dumps(history)), history
    assert not SECRET_SHAPES.search(json.dumps(config)), config
    assert {entry.split("=", 1)[0] for entry in config["Env"]} == IMAGE_ENV
    assert config["User"] == "10001:10001"

    def bundle_digest(image: str) -> str:
        out = podman.run(
            "run", "--rm", "--entrypoint", "sha256sum", image, "/etc/ssl/certs/ca-certificates.crt"
        )
        return out.split()[0]

    assert bundle_digest(service_image) == bundle_digest(base_image)

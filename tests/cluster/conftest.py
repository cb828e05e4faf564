"""Cluster tier: the service against Kafka clusters this tier starts for itself (a 3-node
KRaft cluster, RF 3, min.insync.replicas 2; a single broker), never the shared stack's, so
their brokers can be killed and restarted. The fault tier's harness and stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.fault.conftest import Harness, charges

__all__ = ["charges"]  # the fault tier's request maker, as a fixture here too
from tests.support.service import KafkaClient, Topics
from tests.support.stack import StandIn, load_stack_module, standin_request


class Brokers:
    """A private cluster (or single broker): its address and how to crash and restart it."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
        self._stack: Any = load_stack_module()

    def kill(self, node: int | None = None) -> None:
        """SIGKILL one node of the cluster (``node``) or the single broker."""
        if node is None:
            self._stack.kill_kafka(self.directory)
        else:
            self._stack.kill_node(self.directory, node)

    def start(self, node: int | None = None) -> float:
        """Start it again on its ports and data; seconds until it is ready."""
        if node is None:
            return float(self._stack.start_kafka(self.directory))
        return float(self._stack.start_node(self.directory, node))

    def node_of(self, port: int) -> int:
        ports = [int(address.rsplit(":", 1)[1]) for address in self.bootstrap.split(",")]
        return ports.index(port) + 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brokers]:
    """Three KRaft nodes (broker and controller each) on this machine."""
    directory = tmp_path_factory.mktemp("cluster")
    stack = load_stack_module()
    env = stack.up(directory, conductor=False, partitions=3, brokers=3, only=("kafka",))
    try:
        yield Brokers(directory, env)
    finally:
        stack.down(directory)


@pytest.fixture(scope="module")
def single_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brokers]:
    """One broker of this tier's own, to restart."""
    directory = tmp_path_factory.mktemp("single")
    stack = load_stack_module()
    env = stack.up(directory, conductor=False, partitions=3, only=("kafka",))
    try:
        yield Brokers(directory, env)
    finally:
        stack.down(directory)


async def harness_on(
    brokers: Brokers, stack: dict[str, str], standin: StandIn, logs: Path
) -> AsyncIterator[Harness]:
    await standin_request(standin.url, "POST", "/_standin/reset")
    async with KafkaClient(brokers.bootstrap, Topics()) as client:
        h = Harness({**stack, "KAFKA_BOOTSTRAP_SERVERS": brokers.bootstrap}, standin, client, logs)
        try:
            yield h
        finally:
            for process in h.processes:
                process.close()


@pytest_asyncio.fixture
async def cluster_harness(
    cluster: Brokers, stack: dict[str, str], standin: StandIn, tmp_path: Path
) -> AsyncIterator[Harness]:
    async for h in harness_on(cluster, stack, standin, tmp_path):
        yield h


@pytest_asyncio.fixture
async def single_harness(
    single_broker: Brokers, stack: dict[str, str], standin: StandIn, tmp_path: Path
) -> AsyncIterator[Harness]:
    async for h in harness_on(single_broker, stack, standin, tmp_path):
        yield h

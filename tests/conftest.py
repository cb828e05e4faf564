"""Session-wide fixtures: the real local stack (Kafka + stripe-mock) and the Stripe stand-in,
started once and only when a test asks for them (unit tests start nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.left_tasks import stop_tasks, tasks_running
from tests.support.stack import (
    StandIn,
    add_conductor,
    load_stack_module,
    local_stack,
    secured_kafka,
)

_LOOP = pytest.StashKey[asyncio.AbstractEventLoop]()


@pytest_asyncio.fixture(autouse=True)
async def _session_loop(request: pytest.FixtureRequest) -> None:
    """Notes the event loop the test runs on (the session's), for the hook below."""
    request.node.stash[_LOOP] = asyncio.get_running_loop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """A test stopped by its timeout is cancelled (with what it awaits) before its fixtures
    are torn down, so it does not run on, and fail, inside later tests
    (tests/support/left_tasks.py)."""
    try:
        return (yield)
    except BaseException:
        loop = item.stash.get(_LOOP, None)
        if loop is not None and isinstance(item, pytest.Function):
            left = stop_tasks(loop, tasks_running(loop, item.function))
            if left:
                item.add_report_section("call", "tasks still running", "\n".join(left))
        raise


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def stack(stack_dir: Path) -> Iterator[dict[str, str]]:
    """Kafka, stripe-mock and Redis (Conductor joins when an e2e test asks for it)."""
    with local_stack(stack_dir) as env:
        yield env


@pytest.fixture(scope="session")
def conductor_url(stack: dict[str, str], stack_dir: Path) -> str:
    return add_conductor(stack_dir)["CONDUCTOR_URL"]


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    process = StandIn(Path(tmp_path_factory.mktemp("standin")) / "standin.log")
    try:
        yield process
    finally:
        process.close()


@pytest.fixture(scope="session")
def redis_cluster_url(stack: dict[str, str], stack_dir: Path) -> Iterator[str]:
    """The stack's three-primary Redis Cluster; a private one when the stack predates it."""
    if "REDIS_CLUSTER_URL" in stack:
        yield stack["REDIS_CLUSTER_URL"]
        return
    directory = stack_dir / "redis-cluster-only"
    local = load_stack_module()
    try:
        yield local.start_redis_cluster(directory)
    finally:
        local.down(directory)


@pytest.fixture(scope="session")
def secured_kafka_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One private secured broker per test session (SASL_SSL, SSL with client certificates,
    ACLs), shared by every security test; started only when one asks for it."""
    with secured_kafka(tmp_path_factory.mktemp("secured-kafka")) as env:
        yield env

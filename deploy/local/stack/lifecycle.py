"""The stack as a whole, driven through the component table: ``up`` (install what is
missing, start what is not running, write stack.env), ``down``, ``status``, ``install``,
and the broker's faults for the fault tests (kill, start, stop, restart on the same port
and data). Everything binds 127.0.0.1 on free ports, so several stacks (a developer's and
a test run's) can coexist.

The stack: a single-node Apache Kafka broker (KRaft) run from Maven Central jars, Stripe's
stripe-mock built with ``go install``, a Redis server from Debian's packages (the shared
meter-event dedup ledger), a three-primary Redis Cluster of the same binary (what the shared
state is tested against on a cluster), and optionally a Conductor OSS server (SQLite
persistence, Kafka event queue pointed at the local broker).
"""

from __future__ import annotations

import shutil
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import (
    conductor_server,
    kafka_acls,
    kafka_broker,
    kafka_cluster,
    kafka_security,
    network,
    processes,
    redis_cluster,
    redis_server,
    stack_dir,
    stripe_mock,
)
from .component import StackSettings
from .downloads import cache_dir
from .launch import restart_and_wait, start_and_wait
from .shell import StackError, say

COMPONENTS = (  # in stack.env's order
    kafka_broker.KAFKA,
    stripe_mock.STRIPE_MOCK,
    redis_server.REDIS,
    redis_cluster.REDIS_CLUSTER,
    conductor_server.CONDUCTOR,
)
BY_NAME = {component.name: component for component in COMPONENTS}
NAMES = tuple(BY_NAME)
DEFAULT_PARTITIONS = 3


def install(conductor: bool = True) -> None:
    """Fill the cache: Kafka jars, stripe-mock, redis-server, and (optionally) Java 21 +
    Conductor."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    redis_server.install_redis()

    def jvm_parts() -> None:  # Maven runs one at a time; the Go build overlaps with them
        kafka_broker.install_kafka()
        if conductor:
            conductor_server.install_conductor()

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures: list[Future[Any]] = [
            pool.submit(jvm_parts),
            pool.submit(stripe_mock.install_stripe_mock),
        ]
        for future in futures:
            future.result()


def _env(dir: Path, state: dict[str, Any], running: list[str]) -> dict[str, str]:
    env = {c.env_key: c.address(state) for c in COMPONENTS if c.name in running}
    if "kafka" in running and kafka_broker.secured(state):
        env.update(kafka_security.client_env(dir, state))
    return env


def up(
    dir: Path = stack_dir.DEFAULT_DIR,
    conductor: bool = True,
    partitions: int | None = None,
    *,
    secured: bool = False,
    only: tuple[str, ...] | None = None,
    brokers: int = 1,
) -> dict[str, str]:
    """Start (or complete) the stack in dir and return its addresses (stack.env's content).

    partitions is the broker's num.partitions (default 3); a running broker keeps its own.
    secured adds the broker's SASL_SSL and SSL listeners under ACLs (kafka_security), and
    grants the service's principal its least-privilege ACLs on the default topic names.
    only: start just these components (a test's private secured broker: ``("kafka",)``).
    brokers > 1: a replicated KRaft cluster (kafka_cluster: RF 3, min.insync.replicas 2)
    in place of the single broker; KAFKA_BOOTSTRAP_SERVERS lists every node.
    """
    if brokers > 1:
        if secured:
            raise StackError("--secured is for the single broker; not with --brokers")
        # Conductor is told a single broker's address: not started beside a cluster.
        others = tuple(n for n in (only or NAMES) if n not in ("kafka", "conductor"))
        env = up(dir, False, partitions, only=others) if others else {}
        bootstrap = kafka_cluster.cluster_up(dir, brokers, partitions or DEFAULT_PARTITIONS)
        env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, **env}
        stack_dir.write_env(stack_dir.resolve(dir), env)
        return env
    dir = stack_dir.resolve(dir)
    conductor = conductor or processes.recorded_pid(dir, "conductor") is not None
    install(conductor=conductor)
    with stack_dir.locked(dir):
        state = stack_dir.load_state(dir)
        fresh = not state
        wanted = [
            name
            for name in NAMES
            if (name != "conductor" or conductor) and (only is None or name in only)
        ]
        running = [
            name
            for name in wanted
            if name in state
            and processes.live_pid(dir, name) is not None
            and BY_NAME[name].answers(state)
        ]
        for name in running:
            say(f"{name}: already up at {BY_NAME[name].address(state)}")
        if "kafka" in running and secured != kafka_broker.secured(state):
            say(f"kafka: keeps secured={kafka_broker.secured(state)} until `down`")
            secured = kafka_broker.secured(state)
        kept = state.get("kafka", {}).get("partitions", DEFAULT_PARTITIONS)
        if "kafka" in running and partitions not in (None, kept):
            say(f"kafka: keeps num.partitions={kept} until `down`")
        partitions = partitions or kept
        to_start = [name for name in wanted if name not in running]
        kafka_moves = "kafka" in state and not network.port_free(state["kafka"]["port"])
        if "kafka" in to_start and kafka_moves and "conductor" in running:
            running.remove("conductor")  # it must be told the broker's new address
            to_start.append("conductor")
        hung = {
            pid: processes.marker(dir, n)
            for n in to_start
            if (pid := processes.live_pid(dir, n)) is not None
        }
        processes.stop(hung, timeout=10.0)
        components = [BY_NAME[name] for name in to_start]
        start_and_wait(dir, state, components, StackSettings(partitions, secured), fresh)
        if secured and "kafka" in to_start and fresh:
            kafka_acls.grant(dir, state, kafka_broker.install_kafka(), kafka_acls.ServiceGrants())
        env = _env(dir, state, wanted)
        stack_dir.write_env(dir, env)
    return env


def down(dir: Path = stack_dir.DEFAULT_DIR, keep_data: bool = False) -> None:
    """Stop everything started in dir; remove pids and stack.env (and data unless keep_data)."""
    dir = stack_dir.resolve(dir)
    if not dir.exists():
        return
    kafka_cluster.stop_cluster(dir)
    with stack_dir.locked(dir):
        # Conductor first: its Kafka clients wait for the broker while closing.
        for group in (("conductor", "stripe-mock", "redis", "redis-cluster"), ("kafka",)):
            targets = {}
            for name in group:
                pid = processes.recorded_pid(dir, name)
                if pid is not None and processes.is_ours(pid, processes.marker(dir, name)):
                    targets[pid] = processes.marker(dir, name)
            started = time.monotonic()
            processes.stop(targets)
            for marker in targets.values():
                name = marker.rsplit("/", 1)[1]
                say(f"{name}: stopped ({time.monotonic() - started:.1f}s)")
        processes.stop(processes.strays(dir, NAMES))
        for name in NAMES:
            processes.pid_file(dir, name).unlink(missing_ok=True)
        (dir / "stack.env").unlink(missing_ok=True)
        if not keep_data:
            (dir / "state.json").unlink(missing_ok=True)
            shutil.rmtree(dir / "kafka", ignore_errors=True)
            for node in dir.glob("kafka-[0-9]*"):
                shutil.rmtree(node, ignore_errors=True)
            shutil.rmtree(dir / "redis", ignore_errors=True)
            shutil.rmtree(dir / "redis-cluster", ignore_errors=True)
            shutil.rmtree(dir / "conductor", ignore_errors=True)


def status(dir: Path = stack_dir.DEFAULT_DIR) -> dict[str, bool]:
    """Map each started component (one with a pid file) to whether it answers."""
    dir = stack_dir.resolve(dir)
    state = stack_dir.load_state(dir)
    return {
        name: processes.live_pid(dir, name) is not None
        and name in state
        and BY_NAME[name].answers(state)
        for name in NAMES
        if processes.pid_file(dir, name).exists()
    }


def grant_acls(dir: Path, grants: kafka_acls.ServiceGrants) -> None:
    """Add the service principal's ACLs on the secured broker of dir (tests name their own
    topics and group; ``up --secured`` grants the defaults)."""
    dir = stack_dir.resolve(dir)
    with stack_dir.locked(dir):
        state = stack_dir.load_state(dir)
        if not kafka_broker.secured(state):
            raise StackError(f"kafka: the broker in {dir} was not started with --secured")
        kafka_acls.grant(dir, state, kafka_broker.install_kafka(), grants)


def kill_kafka(dir: Path = stack_dir.DEFAULT_DIR) -> None:
    """SIGKILL the broker (a crash); its pid file stays, so status reports it down."""
    dir = stack_dir.resolve(dir)
    with stack_dir.locked(dir):
        pid = processes.live_pid(dir, "kafka")
        if pid is not None:
            processes.signal_group(pid, signal.SIGKILL)
            processes.wait_gone([pid], lambda _: processes.marker(dir, "kafka"), 10.0)


def start_kafka(dir: Path = stack_dir.DEFAULT_DIR) -> float:
    """Start the broker on its previous port and data dir; return seconds until ready."""
    dir = stack_dir.resolve(dir)
    with stack_dir.locked(dir):
        state = stack_dir.load_state(dir)
        if "kafka" not in state:
            raise StackError(f"kafka: no stack in {dir}; run `up` first")
        if processes.live_pid(dir, "kafka") is not None and kafka_broker.answers(
            state["kafka"]["port"]
        ):
            return 0.0
        kafka_broker.prepare_restart(dir, state)
        return restart_and_wait(dir, kafka_broker.KAFKA, state)


def stop_kafka(dir: Path = stack_dir.DEFAULT_DIR) -> None:
    """Stop the broker gracefully (SIGTERM, then SIGKILL after a timeout)."""
    dir = stack_dir.resolve(dir)
    with stack_dir.locked(dir):
        pid = processes.live_pid(dir, "kafka")
        if pid is not None:
            started = time.monotonic()
            processes.stop({pid: processes.marker(dir, "kafka")})
            say(f"kafka: stopped ({time.monotonic() - started:.1f}s)")


def restart_kafka(dir: Path = stack_dir.DEFAULT_DIR) -> float:
    """Stop and start the broker on the same port and data dir; return start-up seconds."""
    stop_kafka(dir)
    return start_kafka(dir)


def start_redis_cluster(dir: Path) -> str:
    """Only the Redis Cluster, in dir (for tests whose stack predates it); its URL."""
    dir = stack_dir.resolve(dir)
    component = redis_cluster.REDIS_CLUSTER
    with stack_dir.locked(dir):
        state = stack_dir.load_state(dir)
        running = component.name in state and processes.live_pid(dir, component.name)
        if not (running and component.answers(state)):
            start_and_wait(dir, state, [component], StackSettings(DEFAULT_PARTITIONS), True)
        return component.address(state)

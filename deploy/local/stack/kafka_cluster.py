"""A replicated KRaft cluster on one machine (``up --brokers 3``): N nodes, each a broker and
a controller (static quorum), every topic at replication factor N (at most 3) with
``min.insync.replicas=2`` and unclean leader election off, as production runs it. Each node
is a component of its own (``kafka-1``...: its pid, log, ports and data dir), so one can be
killed and restarted on its ports and data while the others serve."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from . import kafka_broker, network, processes, stack_dir
from .component import Component, StackSettings
from .kafka_config import KAFKA_LOG4J, kafka_cluster_id
from .launch import restart_and_wait, start_and_wait
from .shell import StackError, run

CLUSTER = "kafka_cluster"  # its key in state.json


def node_name(node_id: int) -> str:
    return f"kafka-{node_id}"


def cluster_properties(state: dict[str, Any], node_id: int, data_dir: Path) -> str:
    """server.properties of one node of the cluster."""
    cluster = state[CLUSTER]
    nodes = cluster["nodes"]
    me = nodes[str(node_id)]
    voters = ",".join(
        f"{n}@127.0.0.1:{nodes[n]['controller_port']}" for n in sorted(nodes, key=int)
    )
    replicas = min(3, len(nodes))
    min_isr = min(2, replicas)
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://127.0.0.1:{me['port']},CONTROLLER://127.0.0.1:"
        f"{me['controller_port']}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{me['port']}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": str(cluster["partitions"]),
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min_isr),
        "unclean.leader.election.enable": "false",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_isr),
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": str(min_isr),
        "group.initial.rebalance.delay.ms": "0",
        # A killed node is fenced (its partitions' leadership moved) after this long.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "1000",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _node(node_id: int) -> Component:
    name = node_name(node_id)

    def prepare(dir: Path, state: dict[str, Any], settings: StackSettings) -> None:
        conf = dir / name
        text = cluster_properties(state, node_id, conf / "data")
        stack_dir.write_atomic(conf / "server.properties", text)
        stack_dir.write_atomic(conf / "log4j2.properties", KAFKA_LOG4J)

    def command(dir: Path, state: dict[str, Any]) -> list[str]:
        return kafka_broker.node_command(dir / name)

    def format_storage(dir: Path) -> None:
        conf = dir / name
        if (conf / "data" / "meta.properties").exists():
            return
        cluster_id = stack_dir.load_state(dir)[CLUSTER]["cluster_id"]
        kafka_broker.install_kafka()  # the jars, fetched on first use
        run(kafka_broker.storage_format_command(conf, cluster_id), f"{name}: StorageTool format")

    return Component(
        name=name,
        env_key="KAFKA_BOOTSTRAP_SERVERS",
        address_template="127.0.0.1:{port}",
        workdir=name,
        ready_timeout_s=120.0,
        prepare=prepare,
        command=command,
        probe=kafka_broker.answers,
        ready_line=b"Kafka Server started",
        before_spawn=format_storage,
    )


def _choose_ports(state: dict[str, Any], brokers: int, partitions: int) -> None:
    taken: set[int] = set()

    def fresh() -> int:
        port = network.free_port()
        while port in taken:
            port = network.free_port()
        taken.add(port)
        return port

    state[CLUSTER] = {
        "cluster_id": kafka_cluster_id(),
        "partitions": partitions,
        "nodes": {
            str(n): {"port": fresh(), "controller_port": fresh()} for n in range(1, brokers + 1)
        },
    }
    for n in range(1, brokers + 1):  # Component.port() reads state[name]["port"]
        state[node_name(n)] = state[CLUSTER]["nodes"][str(n)]


def node_ids(state: dict[str, Any]) -> list[int]:
    return sorted(int(n) for n in state.get(CLUSTER, {}).get("nodes", {}))


def bootstrap(state: dict[str, Any]) -> str:
    nodes = state[CLUSTER]["nodes"]
    return ",".join(f"127.0.0.1:{nodes[str(n)]['port']}" for n in node_ids(state))


def cluster_up(dir: Path, brokers: int = 3, partitions: int = 3) -> str:
    """Start an N-node cluster in dir (fresh), wait until every node is ready; its
    bootstrap servers."""
    dir = stack_dir.resolve(dir)
    kafka_broker.install_kafka()
    with stack_dir.locked(dir):
        state = stack_dir.load_state(dir)
        if CLUSTER in state:
            raise StackError(f"kafka: a cluster is already recorded in {dir}; `down` first")
        _choose_ports(state, brokers, partitions)
        components = [_node(n) for n in node_ids(state)]
        start_and_wait(dir, state, components, StackSettings(partitions), fresh=True)
        stack_dir.save_state(dir, state)
        return bootstrap(state)


def kill_node(dir: Path, node_id: int) -> None:
    """SIGKILL one node (a crash); its ports and data stay for start_node."""
    dir = stack_dir.resolve(dir)
    name = node_name(node_id)
    pid = processes.live_pid(dir, name)
    if pid is not None:
        processes.signal_group(pid, signal.SIGKILL)
        processes.wait_gone([pid], lambda _: processes.marker(dir, name), 10.0)


def start_node(dir: Path, node_id: int) -> float:
    """Start one node again on its ports and data; seconds until it is ready."""
    dir = stack_dir.resolve(dir)
    state = stack_dir.load_state(dir)
    node = state[CLUSTER]["nodes"][str(node_id)]
    for port in (node["port"], node["controller_port"]):
        if not network.wait_port_free(port, 15.0):
            raise StackError(f"{node_name(node_id)}: port {port} is still in use")
    return restart_and_wait(dir, _node(node_id), state)


def stop_cluster(dir: Path) -> None:
    """Stop every node recorded in dir (SIGTERM, then SIGKILL)."""
    dir = stack_dir.resolve(dir)
    state = stack_dir.load_state(dir)
    names = [node_name(n) for n in node_ids(state)]
    targets = {}
    for name in names:
        pid = processes.recorded_pid(dir, name)
        if pid is not None and processes.is_ours(pid, processes.marker(dir, name)):
            targets[pid] = processes.marker(dir, name)
    processes.stop(targets)
    processes.stop(processes.strays(dir, names))

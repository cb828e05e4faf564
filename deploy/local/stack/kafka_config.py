"""What a Kafka broker is told: a KRaft node's server.properties, its Log4j2 configuration
and a cluster id. Text only, no process: a listener of another protocol (SSL, SASL_SSL) or a
node of a larger cluster is a change here, and the broker module writes what this returns."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

KAFKA_LOG4J = """status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# The full config dumps (hundreds of lines per client) drown everything else.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def server_properties(
    data_dir: Path,
    port: int,
    controller_port: int,
    partitions: int,
    listeners: dict[str, str] | None = None,
) -> str:
    """server.properties of one node that is both broker and controller, on 127.0.0.1;
    ``listeners`` replaces the single PLAINTEXT listener (kafka_security's secured set)."""
    settings = {
        **_quorum(controller_port),
        **(listeners or _listeners(port, controller_port)),
        **_topics(data_dir, partitions),
        **_single_node_replication(),
        **_timing(),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _quorum(controller_port: int) -> dict[str, str]:
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
    }


def _listeners(port: int, controller_port: int) -> dict[str, str]:
    return {
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    }


def _topics(data_dir: Path, partitions: int) -> dict[str, str]:
    return {
        "log.dirs": str(data_dir),
        "num.partitions": str(partitions),
        "auto.create.topics.enable": "true",
    }


def _single_node_replication() -> dict[str, str]:
    # One node: every internal topic must be RF 1 / min ISR 1 (defaults 3 / 2 never fit).
    return {
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
    }


def _timing() -> dict[str, str]:
    return {
        "group.initial.rebalance.delay.ms": "0",
        # After a SIGKILL the restarted node waits out its old registration's session
        # (default 9 s) before it can register again; keep that short for fault tests.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "1000",
    }


def kafka_cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID, as Kafka's own `random-uuid` makes).

    One in 64 such ids starts with `-`, which the StorageTool's argument parser reads as an
    option ("argument --cluster-id/-t: expected one argument"): redraw those.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id

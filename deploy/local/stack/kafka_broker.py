"""The Kafka broker as a process: its jars from Maven Central, run with the system's Java in
KRaft mode; its ports in state.json (kept across restarts), its storage formatted once, and
its readiness (ApiVersions answered, ``Kafka Server started`` logged). What the broker is
told lives in kafka_config."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import Any

from . import kafka_security, network, stack_dir
from .component import Component, StackSettings
from .downloads import DEPENDENCY_PLUGIN_VERSION, cache_dir, complete, file_lock, installing, mvn
from .java_runtime import system_java
from .kafka_config import KAFKA_LOG4J, kafka_cluster_id, server_properties
from .shell import StackError, run, say

# Kafka 4.1.1: the documented recipe, verified here (4.4.0 also starts with the same recipe).
KAFKA_VERSION = "4.1.1"
# SLF4J 1.7 -> Log4j2 binding that Kafka 4.1's release tarball ships but no POM names;
# without it the broker logs nothing (and the readiness line never appears).
LOG4J_VERSION = "2.24.3"
KAFKA_HEAP_OPTS = os.environ.get("STACK_KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m").split()


def _kafka_home() -> Path:
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def _pom() -> str:
    deps = [
        ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
        # ConsoleProducer/ConsoleConsumer, TopicCommand & co., for poking the broker by hand.
        ("org.apache.kafka", "kafka-tools", KAFKA_VERSION),
        ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
    ]
    dep_xml = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.stack</groupId><artifactId>kafka-broker-libs</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dep_xml}
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId>
    <version>{DEPENDENCY_PLUGIN_VERSION}</version>
  </plugin></plugins></build>
</project>
"""


def install_kafka() -> Path:
    """Return the broker's lib dir, fetching the jars from Maven Central on first use."""
    home = _kafka_home()
    with file_lock(cache_dir() / ".lock-kafka"):
        if not complete(home):
            say(f"kafka: installing {KAFKA_VERSION} jars (first run only)...")
            with installing(home) as tmp:
                (tmp / "pom.xml").write_text(_pom())
                mvn(
                    [
                        "dependency:copy-dependencies",
                        f"-DoutputDirectory={tmp / 'lib'}",
                        "-DincludeScope=runtime",
                    ],
                    "kafka: mvn dependency:copy-dependencies",
                    cwd=tmp,
                )
    return home / "lib"


def prepare(dir: Path, state: dict[str, Any], settings: StackSettings) -> None:
    """Choose the broker's ports (the recorded ones while free) and write its configuration."""
    kafka = state.get("kafka", {})
    port = network.reuse_or_free(kafka.get("port"))
    cport = network.reuse_or_free(kafka.get("controller_port"))
    while cport == port:
        cport = network.free_port()
    kafka["port"], kafka["controller_port"] = port, cport
    kafka["partitions"] = settings.partitions
    if settings.secured:
        taken = {port, cport}
        for key in ("sasl_ssl_port", "ssl_port"):
            chosen = network.reuse_or_free(kafka.get(key))
            while chosen in taken:
                chosen = network.free_port()
            kafka[key] = chosen
            taken.add(chosen)
    else:
        for key in ("sasl_ssl_port", "ssl_port", "scram"):
            kafka.pop(key, None)
    state["kafka"] = kafka
    _configure(dir, state)


def prepare_restart(dir: Path, state: dict[str, Any]) -> None:
    """Rewrite the broker's configuration on its recorded ports, once they are free again."""
    kafka = state["kafka"]
    ports = [kafka[key] for key in ("port", "controller_port", "sasl_ssl_port", "ssl_port")
             if key in kafka]  # fmt: skip
    for p in ports:
        if not network.wait_port_free(p, 15.0):
            raise StackError(f"kafka: port {p} is still in use; cannot restart on it")
    _configure(dir, state)


def secured(state: dict[str, Any]) -> bool:
    return "sasl_ssl_port" in state.get("kafka", {})


def _configure(dir: Path, state: dict[str, Any]) -> None:
    kafka = state["kafka"]
    port, cport, partitions = kafka["port"], kafka["controller_port"], kafka["partitions"]
    conf = dir / "kafka"
    listeners = None
    if secured(state):
        kafka_security.make_certificates(dir)
        kafka_security.credentials(state)
        listeners = kafka_security.listener_properties(
            dir, port, cport, kafka["sasl_ssl_port"], kafka["ssl_port"]
        )
    properties = server_properties(conf / "data", port, cport, partitions, listeners)
    stack_dir.write_atomic(conf / "server.properties", properties)
    stack_dir.write_atomic(conf / "log4j2.properties", KAFKA_LOG4J)


def command(dir: Path, state: dict[str, Any]) -> list[str]:
    return node_command(dir / "kafka")


def node_command(conf: Path) -> list[str]:
    """The broker's command line, its configuration in conf (server.properties, log4j2)."""
    return [
        system_java(),
        *KAFKA_HEAP_OPTS,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={conf / 'logs'}",
        "-cp",
        f"{_kafka_home() / 'lib'}/*",
        "kafka.Kafka",
        str(conf / "server.properties"),
    ]


def format_storage(dir: Path) -> None:
    """Format the KRaft log dir once (a restart keeps it, and with it the topics)."""
    if (dir / "kafka" / "data" / "meta.properties").exists():
        return
    cluster_id = kafka_cluster_id()
    conf = dir / "kafka"
    state = stack_dir.load_state(dir)
    scram = (
        kafka_security.scram_format_arguments(kafka_security.credentials(state))
        if secured(state)
        else []
    )
    run(storage_format_command(conf, cluster_id, *scram), "kafka: StorageTool format")


def storage_format_command(conf: Path, cluster_id: str, *extra: str) -> list[str]:
    """KRaft's StorageTool formatting the log dir that conf/server.properties names (a single
    broker's or a cluster node's)."""
    return [
        system_java(),
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}",
        "-cp",
        f"{_kafka_home() / 'lib'}/*",
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(conf / "server.properties"),
        *extra,
    ]


def answers(port: int) -> bool:
    """True when the broker answers an ApiVersions request (v0) without error."""
    client_id = b"local-stack"
    request = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            correlation_id, error_code = struct.unpack(">ih", _recv_exact(sock, size)[:6])
    except (OSError, struct.error):
        return False
    return bool(correlation_id == 7 and error_code == 0)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


KAFKA = Component(
    name="kafka",
    env_key="KAFKA_BOOTSTRAP_SERVERS",
    address_template="127.0.0.1:{port}",
    workdir="kafka",
    ready_timeout_s=90.0,
    prepare=prepare,
    command=command,
    probe=answers,
    # The port opens a moment before the broker is fully up; this line says it is.
    ready_line=b"Kafka Server started",
    before_spawn=format_storage,
)

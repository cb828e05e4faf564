"""A testcontainers container for the apache/kafka-style image (the local one from
deploy/local/images.py, or apache/kafka itself where a registry answers).

testcontainers-python's own ``KafkaContainer`` drives Confluent's image (its scripts under
/etc/confluent); this does for an apache/kafka-style image what it does there: the broker
starts only once the host port Docker (here podman) mapped is known, so it can advertise it.
Import this module only after DOCKER_HOST and the TESTCONTAINERS_* variables are set:
testcontainers reads them when first imported."""

from __future__ import annotations

import io
import tarfile
from typing import Self

from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

PORT = 9092
START_FILE = "/tmp/tc-advertised"


class ApacheKafkaContainer(DockerContainer):
    """One KRaft node; clients use ``bootstrap_server()`` (the mapped port on the host)."""

    def __init__(self, image: str, partitions: int = 3, startup_timeout_s: float = 90) -> None:
        super().__init__(image)
        self.startup_timeout_s = startup_timeout_s
        self.with_exposed_ports(PORT)
        self.with_envs(
            # Clients on PLAINTEXT (mapped to the host); the broker talks to itself on BROKER.
            KAFKA_LISTENERS=f"PLAINTEXT://:{PORT},BROKER://:9094,CONTROLLER://:9093",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=(
                "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
            ),
            KAFKA_INTER_BROKER_LISTENER_NAME="BROKER",
            KAFKA_NUM_PARTITIONS=str(partitions),
        )
        wait = f"while [ ! -f {START_FILE} ]; do sleep 0.1; done"
        self.with_command(["sh", "-c", f'{wait}; . {START_FILE}; exec "$0"', "kafka-run"])

    def bootstrap_server(self) -> str:
        return f"{self.get_container_host_ip()}:{self.get_exposed_port(PORT)}"

    def start(self) -> Self:
        super().start()
        advertised = f"PLAINTEXT://{self.bootstrap_server()},BROKER://localhost:9094"
        script = f"export KAFKA_ADVERTISED_LISTENERS={advertised}\n".encode()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            entry = tarfile.TarInfo(START_FILE.lstrip("/"))
            entry.size, entry.mode = len(script), 0o644
            tar.addfile(entry, io.BytesIO(script))
        self.get_wrapped_container().put_archive("/", archive.getvalue())
        wait = LogMessageWaitStrategy("Kafka Server started")
        wait.with_startup_timeout(int(self.startup_timeout_s))
        wait.wait_until_ready(self)
        return self

"""The service's least-privilege ACLs on the secured broker, written with Kafka's own
``kafka-acls`` tool (``org.apache.kafka.tools.AclCommand``) over the stack's PLAINTEXT
listener, whose principal is a super user. The README's "Kafka security" section lists the
same grants."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .java_runtime import system_java
from .kafka_security import SERVICE_USER
from .shell import run

# The service's default names (CONSUMER_*_TOPIC, CONSUMER_GROUP_ID).
DEFAULT_CONSUMED = ("stripe.requests", "stripe.meter-events")
# `stripe.replies.wait`: the replies of Conductor's KAFKA_PUBLISH + WAIT style.
DEFAULT_PRODUCED = ("stripe.replies", "stripe.dlq", "stripe.meter-errors", "stripe.replies.wait")
DEFAULT_GROUP = "stripe-consumer"


@dataclass(frozen=True)
class ServiceGrants:
    """What the service's principal may do: read its topics and group, write its outputs."""

    consumed: tuple[str, ...] = DEFAULT_CONSUMED
    produced: tuple[str, ...] = DEFAULT_PRODUCED
    group: str = DEFAULT_GROUP
    create_topics: bool = False  # Create on its topics, only with CONSUMER_CREATE_TOPICS on
    described_only: tuple[str, ...] = ()  # Describe alone: a partial grant, for the tests
    principal: str = f"User:{SERVICE_USER}"

    def commands(self) -> list[list[str]]:
        """kafka-acls arguments, one list per call (each call is one JVM start)."""
        allow = ["--add", "--allow-principal", self.principal]

        def topics(names: tuple[str, ...]) -> list[str]:
            return [arg for name in names for arg in ("--topic", name)]

        calls = [
            [*allow, "--operation", "Read", "--operation", "Describe",
             *topics(self.consumed), "--group", self.group],
            [*allow, "--operation", "Write", "--operation", "Describe",
             *topics(self.produced)],
            [*allow, "--operation", "IdempotentWrite", "--cluster"],
        ]  # fmt: skip
        if self.described_only:
            calls.append([*allow, "--operation", "Describe", *topics(self.described_only)])
        if self.create_topics:
            calls.append(
                [*allow, "--operation", "Create", *topics((*self.consumed, *self.produced))]
            )
        return calls


def grant(dir: Path, state: dict[str, Any], kafka_lib: Path, grants: ServiceGrants) -> None:
    """Add the grants on the running broker (adding an existing ACL again is harmless)."""
    bootstrap = f"127.0.0.1:{state['kafka']['port']}"
    log4j = dir / "kafka" / "log4j2.properties"
    for arguments in grants.commands():
        run(
            [
                system_java(),
                "-Xmx128m",
                "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={log4j}",
                "-cp",
                f"{kafka_lib}/*",
                "org.apache.kafka.tools.AclCommand",
                "--bootstrap-server",
                bootstrap,
                *arguments,
            ],
            "kafka: kafka-acls --add",
        )

"""What the orchestrator knows of a component: a card of names and functions, which each
component module fills in for itself (``kafka_broker.KAFKA``, ``redis_server.REDIS``...)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StackSettings:
    """What ``up`` was asked for that shapes a component's configuration."""

    partitions: int  # the broker's num.partitions
    secured: bool = False  # the broker's SASL_SSL and SSL listeners, ACLs (kafka_security)


@dataclass(frozen=True)
class Component:
    name: str  # its pid file, log and marker; its key in state.json
    env_key: str  # its address's key in stack.env
    address_template: str  # its address, from {port}
    workdir: str  # where it runs, under DIR
    ready_timeout_s: float
    # Choose its ports (into state[name]) and write its configuration files into DIR.
    prepare: Callable[[Path, dict[str, Any], StackSettings], None]
    command: Callable[[Path, dict[str, Any]], list[str]]
    probe: Callable[[int], bool]  # whether it answers on this port
    ready_line: bytes | None = None  # up only once its log also says this (since the start)
    before_spawn: Callable[[Path], None] | None = None

    def port(self, state: dict[str, Any]) -> int:
        return int(state[self.name]["port"])

    def address(self, state: dict[str, Any]) -> str:
        return self.address_template.format(port=self.port(state))

    def answers(self, state: dict[str, Any]) -> bool:
        return self.probe(self.port(state))

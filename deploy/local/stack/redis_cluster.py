"""A Redis Cluster of three primaries (no replicas), from the same Debian ``redis-server`` as
``redis_server``: what the service's shared state is tested against with
``CONSUMER_REDIS_CLUSTER=true``. One component, one process group: a shell starts the three
nodes (``cluster-enabled yes``, append-only persistence in DIR/redis-cluster/node-<n>/),
forms the cluster with ``redis-cli --cluster create`` the first time (a restart finds its
``nodes.conf`` and re-forms by itself), and waits on them; stopping the group stops them all.
Ready once every node says ``cluster_state:ok`` (every slot served) and the shell says so."""

from __future__ import annotations

import shlex
import shutil
import socket
from pathlib import Path
from typing import Any

from . import network
from .component import Component, StackSettings
from .redis_server import install_redis

NODES = 3
READY_LINE = b"stack: redis-cluster formed, every node ok"


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/bin/{name}"


def prepare(dir: Path, state: dict[str, Any], settings: StackSettings) -> None:
    install_redis()  # redis-cli comes with it (redis-tools)
    before = state.get("redis-cluster", {})
    ports = [network.reuse_or_free(p) for p in before.get("ports", [None] * NODES)]
    buses = [network.reuse_or_free(p) for p in before.get("bus_ports", [None] * NODES)]
    for n in range(NODES):
        (dir / "redis-cluster" / f"node-{n}").mkdir(parents=True, exist_ok=True)
    state["redis-cluster"] = {"port": ports[0], "ports": ports, "bus_ports": buses}


def _node(dir: Path, n: int, port: int, bus: int) -> list[str]:
    return [
        _binary("redis-server"),
        "--port", str(port),
        "--cluster-port", str(bus),  # not port + 10000, which may be taken or past 65535
        "--bind", "127.0.0.1",
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "5000",
        "--dir", str(dir / "redis-cluster" / f"node-{n}"),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        "--set-proc-title", "no",  # keeps the STRIPE_CONSUMER_STACK marker in environ
    ]  # fmt: skip


def command(dir: Path, state: dict[str, Any]) -> list[str]:
    ports, buses = state["redis-cluster"]["ports"], state["redis-cluster"]["bus_ports"]
    cli = shlex.quote(_binary("redis-cli"))
    lines = [shlex.join(_node(dir, n, ports[n], buses[n])) + " &" for n in range(NODES)]
    for port in ports:
        lines.append(f"until {cli} -p {port} ping >/dev/null 2>&1; do sleep 0.1; done")
    addresses = " ".join(f"127.0.0.1:{port}" for port in ports)
    lines.append(  # a node that knows only itself: never formed (a restart keeps nodes.conf)
        f"if {cli} -p {ports[0]} cluster info | grep -q 'cluster_known_nodes:1[^0-9]'; then "
        f"{cli} --cluster create {addresses} --cluster-replicas 0 --cluster-yes; fi"
    )
    for port in ports:  # every node sees every slot served
        lines.append(
            f"until {cli} -p {port} cluster info | grep -q 'cluster_state:ok'; do sleep 0.1; done"
        )
    lines.append(f"echo {READY_LINE.decode()}")
    lines.append("wait")
    return ["/bin/sh", "-c", "\n".join(lines)]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"CLUSTER INFO\r\n")
            return b"cluster_state:ok" in sock.recv(4096)
    except OSError:
        return False


REDIS_CLUSTER = Component(
    name="redis-cluster",
    env_key="REDIS_CLUSTER_URL",
    address_template="redis://127.0.0.1:{port}/0",
    workdir="redis-cluster",
    ready_timeout_s=30.0,
    prepare=prepare,
    command=command,
    probe=answers,
    ready_line=READY_LINE,
)

"""redis-server, the shared meter-event dedup ledger: from Debian's packages, run with
append-only persistence in DIR/redis/, ready once it answers PING. (Named redis_server, not
redis, so that no import path can take it for the redis client package.)"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

from . import network
from .component import Component, StackSettings
from .downloads import apt_install
from .shell import StackError, say


def _server_binary() -> str:
    return shutil.which("redis-server") or "/usr/bin/redis-server"


def install_redis() -> None:
    """redis-server from Debian's packages (the shared meter-event dedup ledger), if absent."""
    if shutil.which("redis-server"):
        return
    if shutil.which("apt-get") is None:
        raise StackError("redis: `redis-server` is not installed and there is no apt-get")
    say("redis: installing redis-server from Debian's packages (first run only)...")
    apt_install(["redis-server"])


def prepare(dir: Path, state: dict[str, Any], settings: StackSettings) -> None:
    (dir / "redis").mkdir(parents=True, exist_ok=True)
    state["redis"] = {"port": network.reuse_or_free(state.get("redis", {}).get("port"))}


def command(dir: Path, state: dict[str, Any]) -> list[str]:
    """Append-only persistence, so the dedup ledger outlives a restart of Redis too."""
    return [
        _server_binary(),
        "--port", str(state["redis"]["port"]),
        "--bind", "127.0.0.1",
        "--dir", str(dir / "redis"),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "no",
        # Redis rewrites its process title over argv and environ, which would erase the
        # STRIPE_CONSUMER_STACK marker that identifies the process as ours.
        "--set-proc-title", "no",
    ]  # fmt: skip


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


REDIS = Component(
    name="redis",
    env_key="REDIS_URL",
    address_template="redis://127.0.0.1:{port}/0",
    workdir="redis",
    ready_timeout_s=20.0,
    prepare=prepare,
    command=command,
    probe=answers,
)

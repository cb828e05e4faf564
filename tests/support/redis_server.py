"""A private redis-server for tests that stop, restart or wipe it (never the shared stack's):
append-only persistence in its own directory, on a free port of 127.0.0.1."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.process import free_port
from tests.support.stack import load_local_script


def redis_answers(port: int) -> bool:
    """Does a redis-server answer PING there? (The local stack's own probe.)"""
    answers: bool = load_local_script("stack").redis_server.answers(port)
    return answers


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 20) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        log = (self.directory / "redis.log").open("ab")
        command = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout_s
        while not redis_answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.directory}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.process = None

    def wipe(self) -> None:
        """Forget everything it persisted (stopped first): the next start is empty."""
        self.stop()
        for entry in self.directory.iterdir():
            if entry.name != "redis.log":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, killed at the end (SIGKILL ends a paused one too)."""
    server = RedisServer(directory).start()
    try:
        yield server
    finally:
        server.close()

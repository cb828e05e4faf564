"""podman from the tests: the command with this machine's settings, and the service's image
run the way a platform runs it."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from types import ModuleType
from typing import Any

from tests.support.process import free_port

# What a hardened platform gives the container (the Helm chart's securityContext): a
# read-only root file system and not even podman's default tmpfs on /tmp, /run, /var/tmp;
# no capabilities; no privilege escalation. The image needs no writable path at all.
HARDENED = (
    "--read-only",
    "--read-only-tmpfs=false",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
)


class Podman:
    """``podman`` with the generated containers.conf (runc, cgroupfs, ulimits)."""

    def __init__(self, images: ModuleType) -> None:
        self.environ: dict[str, str] = images.podman.environ()

    def call(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args],
            capture_output=True,
            text=True,
            env=self.environ,
            timeout=timeout,
            check=False,
        )

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        """stdout of ``podman ARGS``; with check, an error with its stderr if it fails."""
        proc = self.call(*args, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: exit {proc.returncode}\n{proc.stderr}")
        return proc.stdout

    def ok(self, *args: str, timeout: float = 60) -> bool:
        return self.call(*args, timeout=timeout).returncode == 0

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args))


class ServiceContainer:
    """The service's image as a detached container on the host's network (the local stack
    listens on 127.0.0.1 only), hardened, with its HTTP port on a free loopback port."""

    def __init__(self, podman: Podman, image: str, environ: dict[str, str]) -> None:
        self.podman = podman
        self.image = image
        self.name = f"stripe-consumer-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.environ = {
            **environ,
            "CONSUMER_HTTP_HOST": "127.0.0.1",
            "CONSUMER_HTTP_PORT": str(self.port),
            "LOG_FORMAT": "json",
        }

    def start(self, ready_timeout_s: float = 60) -> float:
        """Start it; the seconds from `podman run` until /readyz answers 200."""
        started = time.monotonic()
        env = [arg for name, value in self.environ.items() for arg in ("-e", f"{name}={value}")]
        self.podman.run(
            "run", "-d", "--name", self.name, "--network", "host", *HARDENED, *env, self.image
        )
        self.wait_ready(ready_timeout_s)
        return time.monotonic() - started

    def http_get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()

    def state(self) -> dict[str, Any]:
        inspected: list[dict[str, Any]] = self.podman.json("container", "inspect", self.name)
        return inspected[0]

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.state()["State"]["Running"]:
                raise RuntimeError(f"container exited; its log:\n{self.logs()}")
            with contextlib.suppress(OSError):
                if self.http_get("/readyz")[0] == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"not ready in {timeout_s}s; its log:\n{self.logs()}")

    def stop(self, grace_s: int) -> int:
        """`podman stop`: SIGTERM, SIGKILL after grace_s; the exit code (137 if killed)."""
        self.podman.run("stop", "--time", str(grace_s), self.name, timeout=grace_s + 30)
        return int(self.state()["State"]["ExitCode"])

    def logs(self) -> str:
        return self.podman.run("logs", self.name, check=False)

    def remove(self) -> None:
        self.podman.run("rm", "--force", "--time", "0", self.name, check=False)

"""The service as a real process (`python -m consumer run`), for what only a process shows:
SIGKILL, SIGTERM drains, two replicas sharing a consumer group, peak memory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.stack import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    def __init__(self, environ: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.environ = {
            **os.environ,
            "CONSUMER_HTTP_HOST": "127.0.0.1",
            "LOG_FORMAT": "json",
            **environ,
            "CONSUMER_HTTP_PORT": str(self.port),
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 60) -> ServiceProcess:
        self.launch()
        self.wait_ready(ready_timeout_s)
        return self

    def launch(self) -> ServiceProcess:
        """Start the process without waiting for it to be ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run"],
            cwd=ROOT,
            env=self.environ,
            stdout=log,
            stderr=log,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def http_get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=2
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"service exited with {self.process.returncode}; see {self.log_path}"
                )
            with contextlib.suppress(OSError):
                if self.http_get("/readyz")[0] == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"service not ready in {timeout_s}s; see {self.log_path}")

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """One sample from /metrics (0 when absent)."""
        _, text = self.http_get("/metrics")
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric_name, _, label_text = series.partition("{")
            if (
                metric_name == name
                and ",".join(sorted(label_text.rstrip("}").split(","))) == wanted
            ):
                return float(value)
        return 0.0

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM; the exit code (the service drains and exits 0)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def peak_rss_kib(self) -> int:
        """VmHWM: the peak resident set size of the running process."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1])

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_lines(self) -> list[str]:
        return (
            self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        )

"""`make demo`: the main job on a fresh machine, from nothing to `21/21 operations COMPLETED`.

Brings the local stack up if it is not (and only then takes it down again), runs the service
as a real process against it, and then:

1. through a real Conductor: registers the event handlers and example workflows, runs the
   two chains, a bad request and one workflow per operation, and reports each workflow's
   status and each EVENT task's output;
2. directly on Kafka: publishes one request per operation exactly as a Conductor EVENT task
   publishes it, and tabulates the replies.

It stops what it started, then prints the reports; the last line is `N/21 operations
COMPLETED`. Run with the project's virtualenv (the Makefile does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack
from stack.network import free_port

ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = ROOT / ".local"


@contextlib.contextmanager
def stack_running() -> Iterator[dict[str, str]]:
    """The stack's addresses. A stack that is already up is reused (with Conductor added if
    it lacks it) and left running; one started here is stopped at the end."""
    env_file = STACK_DIR / "stack.env"
    states = stack.status(STACK_DIR) if env_file.exists() else {}
    if states and all(states.values()):
        if "conductor" in states:
            print("stack: already up, reusing it")
            yield dict(line.split("=", 1) for line in env_file.read_text().split() if "=" in line)
        else:
            print("stack: already up; adding Conductor to it (`make down` stops everything)")
            yield stack.up(STACK_DIR, conductor=True)
        return
    env: dict[str, str] = stack.up(STACK_DIR, conductor=True, partitions=3)
    try:
        yield env
    finally:
        stack.down(STACK_DIR)


@contextlib.contextmanager
def service_running(stack_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """`python -m consumer run` as its own process; SIGTERM and a clean drain at the end."""
    log_path = STACK_DIR / "logs" / "demo-service.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        **stack_env,
        "STRIPE_API_KEY": os.environ.get("STRIPE_API_KEY", "sk_test_123"),
        "CONSUMER_HTTP_PORT": str(port),
        "CONSUMER_GROUP_ID": "stripe-consumer-demo",
        "CONSUMER_REDIS_URL": stack_env.get("REDIS_URL", ""),
        "LOG_FORMAT": "text",
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        try:
            _wait_ready(port, process, log_path)
            print(f"service: running (pid {process.pid}, log {log_path.relative_to(ROOT)})")
            yield env
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            print(f"service: stopped (exit {code})")


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}; see {log}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"the service was not ready within 60s; see {log}")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from consumer.cli.demo import run_demo  # noqa: PLC0415  (path set now)
    from consumer.conductor.demo import run_conductor_demo  # noqa: PLC0415

    with stack_running() as stack_env, service_running(stack_env) as env:
        print("demo: running workflows through Conductor", flush=True)
        conductor_lines, _, _ = asyncio.run(
            run_conductor_demo(stack_env["CONDUCTOR_URL"], "stripe.requests", "stripe.replies")
        )
        print("demo: publishing one request per operation, as Conductor EVENT tasks do", flush=True)
        report = asyncio.run(run_demo(env, timeout_s=90))
    print()
    print(f"== Through Conductor ({stack_env['CONDUCTOR_URL']}) ==")
    print("\n".join(conductor_lines))
    print()
    print("== Directly on Kafka, each request exactly as a Conductor EVENT task publishes it ==")
    print(report.render())
    return 0 if report.completed == report.total else 1


if __name__ == "__main__":
    sys.exit(main())

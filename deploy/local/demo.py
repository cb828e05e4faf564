"""`make demo`: the main job on a fresh machine, from nothing to `21/21 operations COMPLETED`.

Brings the local stack up if it is not (and only then takes it down again), runs the service
as a real process against it, and then:

1. through a real Conductor (in the background): registers the event handlers and example
   workflows, runs the two chains, the KAFKA_PUBLISH example, a bad request and one workflow
   per operation, and reports each workflow's status and each task's output;
2. meanwhile, on a service whose Stripe is the stand-in (``demo_story.py``): a dead letter
   replayed after a fix, 20,000 meter events with the exact count Stripe received, and at
   the end a metrics snapshot of every service process;
3. directly on Kafka: publishes one request per operation exactly as a Conductor EVENT task
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
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import demo_story
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
def service_running(
    stack_env: dict[str, str], name: str = "demo-service", overrides: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """`python -m consumer run` as its own process; SIGTERM and a clean drain at the end.
    The environment it yields holds its `CONSUMER_HTTP_PORT` (for /metrics)."""
    log_path = STACK_DIR / "logs" / f"{name}.log"
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
        **(overrides or {}),
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        try:
            _wait_ready(port, process, log_path)
            print(f"{name}: running (pid {process.pid}, log {log_path.relative_to(ROOT)})")
            yield env
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            print(f"{name}: stopped (exit {code})")


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


def metering_story(stack_env: dict[str, str], snapshot: demo_story.Snapshot) -> list[str]:
    """Usage at volume and a dead letter replayed after a fix, on a service of its own whose
    Stripe is the stand-in (it counts what it receives); the report's lines."""
    with demo_story.standin_running(STACK_DIR / "logs" / "demo-standin.log") as standin_url:
        topics = demo_story.metering_environ(stack_env, standin_url)
        lines = ["A usage event for `billing`, an integration with no key configured yet:"]
        with service_running(stack_env, "demo-metering", topics) as env:
            identifier = asyncio.run(demo_story.publish_bad_record(env))
            position = asyncio.run(demo_story.wait_for_dead_letter(env))
            lines += demo_story.dlq_cli(env, "list")
            lines += demo_story.dlq_cli(env, "show", position)
            demo_story.scrape(env["CONSUMER_HTTP_PORT"], snapshot)
        credentials = STACK_DIR / "demo-credentials"
        credentials.mkdir(parents=True, exist_ok=True)
        (credentials / "billing").write_text("sk_test_51DemoBillingIntegration\n")
        lines.append("The fix: the `billing` key is configured and the service restarted.")
        fixed = {**topics, "STRIPE_CREDENTIALS_DIR": str(credentials)}
        with service_running(stack_env, "demo-metering", fixed) as env:
            lines += demo_story.dlq_cli(env, "replay", "--reason", "rejected")
            lines += demo_story.dlq_cli(env, "replay", "--reason", "rejected", "--execute")
            print(f"demo: {demo_story.EVENTS:,} meter events through the producer helper")
            asyncio.run(demo_story.publish_usage(env))
            stats = demo_story.wait_for_stripe(standin_url, demo_story.EVENTS + 1)
            replayed = demo_story.delivered_once(standin_url, identifier)
            demo_story.scrape(env["CONSUMER_HTTP_PORT"], snapshot)
    twice = stats["meter_identifiers_delivered_more_than_once"]
    lines += [
        f"The replayed event reached Stripe exactly once: {'yes' if replayed else 'NO'}.",
        "",
        f"Stripe (the stand-in) received {stats['meter_events_delivered']:,} meter events for "
        f"{stats['meter_identifiers']:,} identifiers ({demo_story.EVENTS:,} published + the "
        f"replayed one); identifiers received more than once: {len(twice)}; "
        f"stream requests: {stats['meter_stream_requests']:,}.",
    ]
    return lines


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from consumer.cli.demo import run_demo  # noqa: PLC0415  (path set now)
    from consumer.conductor.demo import run_conductor_demo  # noqa: PLC0415

    snapshot = demo_story.Snapshot()
    with stack_running() as stack_env, service_running(stack_env) as env:
        print("demo: running workflows through Conductor (in the background)", flush=True)
        started = threading.Event()
        with ThreadPoolExecutor(1) as background:
            conductor = background.submit(
                asyncio.run,
                run_conductor_demo(
                    stack_env["CONDUCTOR_URL"],
                    "stripe.requests",
                    "stripe.replies",
                    kafka_bootstrap=stack_env["KAFKA_BOOTSTRAP_SERVERS"],
                    started_event=started,
                ),
            )
            # The metering burst waits until Conductor has started every workflow: on a
            # busy machine its REST answers slow down while 20,000 events are processed.
            while not started.wait(timeout=1) and not conductor.done():
                pass
            story = metering_story(stack_env, snapshot)
            conductor_lines, _, _ = conductor.result()
        print("demo: publishing one request per operation, as Conductor EVENT tasks do", flush=True)
        report = asyncio.run(run_demo(env, timeout_s=90))
        demo_story.scrape(env["CONSUMER_HTTP_PORT"], snapshot)
    print()
    print(f"== Through Conductor ({stack_env['CONDUCTOR_URL']}) ==")
    print("\n".join(conductor_lines))
    print()
    print("== Metering at volume, and a dead letter replayed after a fix ==")
    print("\n".join(story))
    print()
    print("== Metrics snapshot (every service process the demo ran, from /metrics) ==")
    print("\n".join(snapshot.render()))
    print()
    print("== Directly on Kafka, each request exactly as a Conductor EVENT task publishes it ==")
    print(
        "(The main service's Stripe is stripe-mock, which answers every get_* and list_* "
        "from fixtures, not with the objects created above.)"
    )
    print(report.render())
    return 0 if report.completed == report.total else 1


if __name__ == "__main__":
    sys.exit(main())

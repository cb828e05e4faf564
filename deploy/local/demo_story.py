"""The second half of `make demo`: what the service is bought for.

- **Metering at volume**: 20,000 meter events published with the producer helper (a
  progress bar), answered by a service whose Stripe is the project's stand-in, which counts
  exactly what it receives: the demo prints that count, per identifier.
- **A dead letter, replayed after a fix**: a usage event for the integration `billing`
  arrives before its key is configured; it lands in the DLQ (`python -m consumer dlq list`
  and `show` say why), the key is added and the service restarted (the fix), and
  `dlq replay --execute` sends it back: the stand-in counts it once.
- **A metrics snapshot** of every service process the demo ran: requests by status, the p99
  of record-in to reply-acknowledged, meter events, dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from prometheus_client.parser import text_string_to_metric_families
from tqdm import tqdm

ROOT: Final = Path(__file__).resolve().parents[2]
EVENTS: Final = 20_000
_PREFIX: Final = "stripe_consumer_"


@contextlib.contextmanager
def standin_running(log: Path) -> Iterator[str]:
    """The Stripe stand-in in its own process; its URL."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy/local/stripe_standin"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            line = process.stdout.readline() if process.stdout else ""
            if not line.startswith("Listening on "):
                raise RuntimeError(f"the stand-in did not start: {line!r}; see {log}")
            yield line.split()[-1]
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def http_json(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


@dataclass
class Snapshot:
    """What the demo reads from the services' /metrics, summed over processes."""

    requests: Counter[str] = field(default_factory=Counter)  # by reply status
    # le -> cumulative count: the operations, and meter events apart (they queue in batches)
    operation_buckets: Counter[float] = field(default_factory=Counter)
    meter_buckets: Counter[float] = field(default_factory=Counter)
    meter_events: Counter[str] = field(default_factory=Counter)  # by API
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason

    def add(self, metrics_text: str) -> None:
        for family in text_string_to_metric_families(metrics_text):
            for sample in family.samples:
                self._add_sample(sample.name.removeprefix(_PREFIX), sample.labels, sample.value)

    def _add_sample(self, name: str, labels: dict[str, str], value: float) -> None:
        if name == "requests_total":
            self.requests[labels["status"]] += int(value)
        elif name == "request_duration_seconds_bucket":
            meter = labels.get("operation") == "create_meter_event"
            buckets = self.meter_buckets if meter else self.operation_buckets
            buckets[float(labels["le"])] += int(value)
        elif name == "meter_events_total":
            self.meter_events[labels["api"]] += int(value)
        elif name == "dlq_total":
            self.dead_letters[labels["reason"]] += int(value)

    @staticmethod
    def p99(buckets: Counter[float]) -> float | None:
        """The upper bound of the histogram bucket holding the 99th percentile."""
        total = buckets.get(float("inf"), 0)
        for bound in sorted(buckets):
            if total and buckets[bound] >= 0.99 * total:
                return bound
        return None

    def render(self) -> list[str]:
        def counts(counter: Counter[str]) -> str:
            return ", ".join(f"{k} {v:,}" for k, v in counter.most_common()) or "none"

        def p99(buckets: Counter[float]) -> str:
            bound = self.p99(buckets)
            total = buckets.get(float("inf"), 0)
            return f"<= {bound:g} s of {total:,}" if bound is not None else "none"

        return [
            f"requests answered, by reply status: {counts(self.requests)}",
            "p99, record received to answered (histogram bucket): operations "
            f"{p99(self.operation_buckets)}; meter events {p99(self.meter_buckets)}",
            f"meter events accepted by Stripe: {sum(self.meter_events.values()):,} "
            f"({counts(self.meter_events)})",
            f"dead letters: {counts(self.dead_letters)}",
        ]


def scrape(port: str, snapshot: Snapshot) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        snapshot.add(response.read().decode())


def metering_environ(stack_env: dict[str, str], standin_url: str) -> dict[str, str]:
    """A service of its own for the metering story, on this run's topics, whose Stripe is the
    stand-in (the demo's main service keeps stripe-mock for the operations)."""
    prefix = f"demo-{uuid.uuid4().hex[:8]}"
    return {
        **stack_env,
        "STRIPE_API_BASE": standin_url,
        "STRIPE_METER_EVENTS_BASE": standin_url,
        "STRIPE_API_KEY": "sk_test_51DemoDefaultIntegration",
        "STRIPE_RATE_LIMIT": "100000",
        "CONSUMER_REQUEST_TOPICS": f"{prefix}.requests",
        "CONSUMER_METER_TOPIC": f"{prefix}.meter-events",
        "CONSUMER_REPLY_TOPIC": f"{prefix}.replies",
        "CONSUMER_DLQ_TOPIC": f"{prefix}.dlq",
        "CONSUMER_GROUP_ID": f"{prefix}.group",
        "DEMO_PREFIX": prefix,
    }


def dlq_cli(env: dict[str, str], *args: str) -> list[str]:
    """`python -m consumer dlq ...` as an on-call would type it; its output, indented."""
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "dlq", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    shown = [f"$ python -m consumer dlq {' '.join(args)}   (exit {result.returncode})"]
    return shown + [f"    {line}" for line in result.stdout.splitlines()]


async def publish_bad_record(env: dict[str, str]) -> str:
    """Usage for `billing`, an integration the service has no key for yet; its identifier."""
    from consumer.producer import MeterEventProducer  # noqa: PLC0415  (path set by demo.py)

    identifier = f"{env['DEMO_PREFIX']}-billing-1"
    async with MeterEventProducer.from_environment(env) as meter:
        await meter.send(
            event_name="api_requests",
            customer_id="cus_DemoBilling",
            identifier=identifier,
            value=5,
            integration="billing",
        )
    return identifier


async def wait_for_dead_letter(env: dict[str, str], timeout_s: float = 60) -> str:
    """Wait for the dead letter; its DLQ position (``partition:offset``)."""
    from consumer.cli.send import client_connection  # noqa: PLC0415
    from consumer.kafka.reader import read_to_end  # noqa: PLC0415
    from consumer.settings import load_client_settings  # noqa: PLC0415

    settings = load_client_settings(env)
    deadline = time.monotonic() + timeout_s
    while not (records := await read_to_end(client_connection(settings), settings.dlq_topic)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no dead letter in {settings.dlq_topic} within {timeout_s}s")
        await asyncio.sleep(0.5)
    return f"{records[0].partition}:{records[0].offset}"


async def publish_usage(env: dict[str, str]) -> None:
    """20,000 meter events through the producer helper, with a progress bar."""
    from consumer.producer import MeterEventProducer  # noqa: PLC0415

    prefix = env["DEMO_PREFIX"]
    async with MeterEventProducer.from_environment(env) as meter:
        for n in tqdm(range(EVENTS), desc="publishing meter events", unit="event"):
            await meter.send(
                event_name="api_requests",
                customer_id=f"cus_Demo{n % 50:04d}",
                identifier=f"{prefix}-{n}",
                value=1,
            )


def wait_for_stripe(standin_url: str, expected: int, timeout_s: float = 150) -> dict[str, Any]:
    """Poll the stand-in until it has received ``expected`` meter events; its stats."""
    deadline = time.monotonic() + timeout_s
    with tqdm(total=expected, desc="received by Stripe (stand-in)", unit="event") as bar:
        while True:
            stats: dict[str, Any] = http_json(f"{standin_url}/_standin/stats")
            bar.update(min(expected, stats["meter_events_delivered"]) - bar.n)
            if stats["meter_events_delivered"] >= expected or time.monotonic() > deadline:
                return stats
            time.sleep(0.5)


def delivered_once(standin_url: str, identifier: str) -> bool:
    stats = http_json(f"{standin_url}/_standin/stats?full=1")
    return bool(stats["meter_deliveries"].get(identifier) == 1)

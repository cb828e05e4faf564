"""`make bench`: throughput, latency and memory of the service on this machine, against a
real Kafka broker and the project's Stripe stand-in (in its own process).

Scenarios (issue 4):
  a  stand-in answers after 100 ms, one partition: the service vs a naive consumer
  b  stand-in answers at once: the service vs aiokafka alone consuming and producing (ceiling)
  c  at half of (a)'s rate: p50/p99 of time spent in the service outside Stripe
  d  peak RSS while working through a 100,000-record backlog
  e  STRIPE_RATE_LIMIT=50: the most calls the stand-in saw in any one second, and 429s
  m  meter events through the v2 stream (Redis ledger): events/s of the service beside
     aiokafka alone reading and decoding the same topic; deliveries per identifier

Prints one table and writes it as JSON to bench/results/latest.json. Set STACK_ENV_FILE to a
running stack's env file to reuse it; otherwise a private stack is started and stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from consumer.kafka.admin import ensure_topics
from consumer.kafka.connection import KafkaConnection
from consumer.kafka.producer import RecordSink
from consumer.kafka.reader import topic_reader
from consumer.kafka.records import OutboundRecord
from tests.support.process import ServiceProcess
from tests.support.stack import ROOT, StandIn, local_stack, standin_request

RESULTS = ROOT / "bench" / "results" / "latest.json"


async def run_process(command: list[str]) -> str:
    """Run a helper process to completion; its stdout."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 600)
    if process.returncode != 0:
        raise RuntimeError(f"{command[2]} exited with {process.returncode}")
    return out.decode()


def charge(key: str) -> bytes:
    return msgspec.json.encode(
        {
            "operation": "create_charge",
            "amount": 4200,
            "currency": "usd",
            "source": "tok_visa",
            "taskId": key,
        }
    )


class Bench:
    def __init__(self, stack: dict[str, str], standin: StandIn, work: Path, scale: float) -> None:
        self.stack = stack
        self.standin = standin
        self.work = work
        self.scale = scale
        self.connection = KafkaConnection(stack["KAFKA_BOOTSTRAP_SERVERS"], client_id="bench")
        self.results: dict[str, Any] = {}
        self.c_rate = 500.0  # scenario c's offered rate when (a) was not run

    def n(self, count: int) -> int:
        return max(10, int(count * self.scale))

    # -- plumbing -------------------------------------------------------------------------

    async def topics(self, name: str, partitions: int) -> dict[str, str]:
        prefix = f"bench-{name}-{uuid.uuid4().hex[:6]}"
        topics = {
            "CONSUMER_REQUEST_TOPICS": f"{prefix}.requests",
            "CONSUMER_METER_TOPIC": f"{prefix}.meter",
            "CONSUMER_REPLY_TOPIC": f"{prefix}.replies",
            "CONSUMER_DLQ_TOPIC": f"{prefix}.dlq",
            "CONSUMER_GROUP_ID": f"{prefix}.group",
        }
        await ensure_topics(
            self.connection,
            {
                topics["CONSUMER_REQUEST_TOPICS"]: partitions,
                topics["CONSUMER_METER_TOPIC"]: partitions,
                topics["CONSUMER_REPLY_TOPIC"]: partitions,
                topics["CONSUMER_DLQ_TOPIC"]: 1,
            },
        )
        return topics

    async def publish(self, topic: str, keys: list[str]) -> None:
        sink = RecordSink(self.connection, linger_ms=20)
        await sink.start()
        try:
            for start in range(0, len(keys), 2000):
                chunk = keys[start : start + 2000]
                await asyncio.gather(
                    *(sink.send(OutboundRecord(topic, k.encode(), charge(k))) for k in chunk)
                )
        finally:
            await sink.stop()

    async def reply_times(self, topic: str, count: int, timeout_s: float) -> list[float]:
        """Kafka timestamps (seconds) of the first `count` replies."""
        async with topic_reader(self.connection, topic) as reader:
            records = await reader.collect(lambda rs: len(rs) >= count, timeout_s=timeout_s)
        return sorted(r.timestamp_ms / 1000 for r in records)[:count]

    @staticmethod
    def rate(times: list[float]) -> float:
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0 else float("nan")

    def service(self, topics: dict[str, str], name: str, **env: str) -> ServiceProcess:
        environ = {
            "KAFKA_BOOTSTRAP_SERVERS": self.stack["KAFKA_BOOTSTRAP_SERVERS"],
            "STRIPE_API_BASE": self.standin.url,
            "STRIPE_API_KEY": "sk_test_123",
            "STRIPE_RATE_LIMIT": "100000",
            "CONSUMER_MAX_IN_FLIGHT": "512",
            "STRIPE_MAX_CONNECTIONS": "512",
            "LOG_LEVEL": "INFO",
            **topics,
            **env,
        }
        return ServiceProcess(environ, self.work / f"{name}.log")

    async def standin_config(self, **config: Any) -> None:
        await standin_request(self.standin.url, "POST", "/_standin/reset")
        await standin_request(self.standin.url, "POST", "/_standin/config", config)

    # -- scenarios ------------------------------------------------------------------------

    async def scenario_a(self) -> None:
        await self.standin_config(latency_ms=100)
        naive_n = self.n(100)
        topics = await self.topics("a-naive", 1)
        await self.publish(
            topics["CONSUMER_REQUEST_TOPICS"], [f"naive-{i}" for i in range(naive_n)]
        )
        await run_process(
            [
                sys.executable, "-m", "bench.naive_consumer",
                "--bootstrap", self.stack["KAFKA_BOOTSTRAP_SERVERS"],
                "--topic", topics["CONSUMER_REQUEST_TOPICS"],
                "--reply-topic", topics["CONSUMER_REPLY_TOPIC"],
                "--group", topics["CONSUMER_GROUP_ID"],
                "--api-base", self.standin.url,
                "--count", str(naive_n),
            ]
        )  # fmt: skip
        naive = self.rate(await self.reply_times(topics["CONSUMER_REPLY_TOPIC"], naive_n, 60))

        count = self.n(15_000)
        topics = await self.topics("a-service", 1)
        await self.publish(topics["CONSUMER_REQUEST_TOPICS"], [f"svc-{i}" for i in range(count)])
        service = self.service(topics, "a-service").start()
        try:
            times = await self.reply_times(topics["CONSUMER_REPLY_TOPIC"], count, 600)
        finally:
            service.terminate()
        # Skip the first second (connection pool warm-up) for the steady rate.
        steady = [t for t in times if t >= times[0] + 1.0]
        rate = self.rate(steady)
        self.results["a"] = {
            "stripe_latency_ms": 100,
            "partitions": 1,
            "naive_records": naive_n,
            "naive_ops_per_s": round(naive, 1),
            "service_records": count,
            "service_ops_per_s": round(rate, 1),
            "ratio": round(rate / naive, 1),
        }

    async def scenario_b(self) -> None:
        await self.standin_config(latency_ms=0)
        count = self.n(20_000)
        topics = await self.topics("b", 1)
        await self.publish(topics["CONSUMER_REQUEST_TOPICS"], [f"b-{i}" for i in range(count)])
        ceiling_out = await run_process(
            [
                sys.executable, "-m", "bench.ceiling",
                "--bootstrap", self.stack["KAFKA_BOOTSTRAP_SERVERS"],
                "--topic", topics["CONSUMER_REQUEST_TOPICS"],
                "--reply-topic", topics["CONSUMER_REPLY_TOPIC"] + ".ceiling",
                "--group", topics["CONSUMER_GROUP_ID"] + ".ceiling",
                "--count", str(count),
            ]
        )  # fmt: skip
        ceiling = float(ceiling_out.strip().splitlines()[-1])
        service = self.service(topics, "b-service").start()
        try:
            times = await self.reply_times(topics["CONSUMER_REPLY_TOPIC"], count, 600)
        finally:
            service.terminate()
        rate = self.rate([t for t in times if t >= times[0] + 1.0])
        self.results["b"] = {
            "stripe_latency_ms": 0,
            "records": count,
            "service_ops_per_s": round(rate, 1),
            "aiokafka_ceiling_ops_per_s": round(ceiling, 1),
            "ratio": round(rate / ceiling, 3),
        }

    async def scenario_c(self) -> None:
        """At half of (a)'s measured rate, as the issue asks; and at 500 ops/s (half of the
        1,000 ops/s target), since a faster (a) makes the first a heavier load."""
        measured = self.results.get("a", {}).get("service_ops_per_s", self.c_rate * 2)
        self.results["c"] = await self.latency_outside_stripe(max(1.0, measured / 2))
        if abs(self.results["c"]["offered_ops_per_s"] - self.c_rate) > 0.1 * self.c_rate:
            self.results["c"]["at_target_half"] = await self.latency_outside_stripe(self.c_rate)

    async def latency_outside_stripe(self, target: float) -> dict[str, Any]:
        await self.standin_config(latency_ms=100)
        seconds = max(5, int(15 * self.scale))
        topics = await self.topics("c", 1)
        service = self.service(topics, f"c-service-{int(target)}").start()
        sink = RecordSink(self.connection, linger_ms=1)
        await sink.start()
        sent = 0
        try:
            started = time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds:
                due = int(elapsed * target) - sent
                if due > 0:
                    keys = [f"c-{sent + i}" for i in range(due)]
                    await asyncio.gather(
                        *(
                            sink.send(
                                OutboundRecord(
                                    topics["CONSUMER_REQUEST_TOPICS"], k.encode(), charge(k)
                                )
                            )
                            for k in keys
                        )
                    )
                    sent += due
                await asyncio.sleep(0.005)
        finally:
            await sink.stop()
        await self.reply_times(topics["CONSUMER_REPLY_TOPIC"], sent, 120)
        service.terminate()
        parts: dict[str, list[float]] = {"overhead": [], "queued": [], "reply": []}
        for line in service.log_lines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("event") == "request" and entry.get("status") == "COMPLETED":
                    parts["overhead"].append(entry["duration_ms"] - entry["stripe_ms"])
                    parts["queued"].append(entry["queued_ms"])
                    parts["reply"].append(entry["reply_ms"])

        def pct(values: list[float], p: int) -> float:
            return round(statistics.quantiles(values, n=100)[p - 1], 2)

        overheads = sorted(parts["overhead"])
        return {
            "offered_ops_per_s": round(target, 1),
            "requests": len(overheads),
            "p50_ms": pct(overheads, 50),
            "p99_ms": pct(overheads, 99),
            "max_ms": round(overheads[-1], 2),
            "breakdown_p50_p99_ms": {
                "waiting_to_start": [pct(parts["queued"], 50), pct(parts["queued"], 99)],
                "reply_until_kafka_ack": [pct(parts["reply"], 50), pct(parts["reply"], 99)],
            },
            "measured": "per request, fetched to reply acknowledged, minus time in Stripe calls",
        }

    async def scenario_d(self) -> None:
        await self.standin_config(latency_ms=0)
        count = self.n(100_000)
        topics = await self.topics("d", 6)
        await self.publish(topics["CONSUMER_REQUEST_TOPICS"], [f"d-{i}" for i in range(count)])
        service = self.service(topics, "d-service", LOG_LEVEL="WARNING").start()
        samples: list[int] = []

        def rss_kib() -> int:
            status = Path(f"/proc/{service.pid}/status").read_text()
            vm_rss = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
            return int(vm_rss.split()[1])

        async def sample() -> None:
            while True:
                with contextlib.suppress(OSError, StopIteration):
                    samples.append(await asyncio.to_thread(rss_kib))
                await asyncio.sleep(1)

        sampler = asyncio.create_task(sample())
        try:
            await self.reply_times(topics["CONSUMER_REPLY_TOPIC"], count, 900)
            peak = service.peak_rss_kib()
        finally:
            sampler.cancel()
            service.terminate()
        along = [samples[min(len(samples) - 1, int(len(samples) * f))] for f in (0.1, 0.5, 0.999)]
        self.results["d"] = {
            "backlog_records": count,
            "peak_rss_mib": round(peak / 1024, 1),
            "rss_mib_at_10_50_100_pct_of_run": [round(kib / 1024, 1) for kib in along],
        }

    async def scenario_e(self) -> None:
        await self.standin_config(latency_ms=0, rate_limit_per_second=50)
        count = self.n(1_000)
        topics = await self.topics("e", 3)
        await self.publish(topics["CONSUMER_REQUEST_TOPICS"], [f"e-{i}" for i in range(count)])
        service = self.service(topics, "e-service", STRIPE_RATE_LIMIT="50").start()
        try:
            await self.reply_times(topics["CONSUMER_REPLY_TOPIC"], count, 600)
        finally:
            service.terminate()
        stats = await standin_request(self.standin.url, "GET", "/_standin/stats?full=1")
        per_second = sorted(stats["calls_per_second"].items())
        self.results["e"] = {
            "rate_limit": 50,
            "calls": stats["calls"],
            "max_calls_in_any_second": max(v for _, v in per_second),
            "responses_429": stats["status_counts"].get("429", 0),
        }

    async def scenario_m(self) -> None:
        await self.standin_config(latency_ms=0)
        count = self.n(200_000)
        topics = await self.topics("m", 6)
        meter_topic = topics["CONSUMER_METER_TOPIC"]
        run = uuid.uuid4().hex[:8]
        sink = RecordSink(self.connection, linger_ms=20)
        await sink.start()
        try:
            for start in range(0, count, 5000):
                await asyncio.gather(
                    *(
                        sink.send(
                            OutboundRecord(meter_topic, f"p{i % 97}".encode(), meter_event(i, run))
                        )
                        for i in range(start, min(count, start + 5000))
                    )
                )
        finally:
            await sink.stop()
        read_out = await run_process(
            [
                sys.executable, "-m", "bench.read_decode",
                "--bootstrap", self.stack["KAFKA_BOOTSTRAP_SERVERS"],
                "--topic", meter_topic,
                "--group", topics["CONSUMER_GROUP_ID"] + ".read",
                "--count", str(count),
            ]
        )  # fmt: skip
        ceiling = float(read_out.strip().splitlines()[-1])
        env = {"STRIPE_METER_EVENTS_BASE": self.standin.url, "LOG_LEVEL": "WARNING"}
        if "REDIS_URL" in self.stack:
            env["CONSUMER_REDIS_URL"] = self.stack["REDIS_URL"]
        service = self.service(topics, "m-service", **env).start()
        samples: list[tuple[float, int]] = []
        try:
            while True:
                stats = await standin_request(self.standin.url, "GET", "/_standin/stats")
                samples.append((time.perf_counter(), int(stats["meter_events_delivered"])))
                if samples[-1][1] >= count:
                    break
                await asyncio.sleep(0.5)
        finally:
            service.terminate()
        # The steady rate: from the first sample with deliveries to the last.
        moving = [(t, n) for t, n in samples if n > 0]
        (t0, n0), (t1, n1) = moving[0], moving[-1]
        rate = (n1 - n0) / (t1 - t0)
        full = await standin_request(self.standin.url, "GET", "/_standin/stats")
        self.results["m"] = {
            "events": count,
            "ledger": "redis" if "REDIS_URL" in self.stack else "memory",
            "service_events_per_s": round(rate, 1),
            "aiokafka_read_decode_per_s": round(ceiling, 1),
            "stream_requests": full["meter_stream_requests"],
            "identifiers_delivered": full["meter_identifiers"],
            "delivered_more_than_once": len(full["meter_identifiers_delivered_more_than_once"]),
        }


def meter_event(i: int, run: str) -> bytes:
    """Identifiers are unique per run: the ledger (Redis) remembers earlier runs' for weeks."""
    return msgspec.json.encode(
        {
            "operation": "create_meter_event",
            "event_name": "api_requests",
            "customer_id": f"cus_{i % 500:05d}",
            "identifier": f"bench-{run}-{i}",
            "value": 1,
        }
    )


def table(results: dict[str, Any]) -> str:
    a, b, c, d, e, m = (results.get(k, {}) for k in "abcdem")
    half = c.get("at_target_half", {})
    rows = [
        ("a", "100 ms Stripe, 1 partition: service ops/s", a.get("service_ops_per_s"), "≥ 1000"),
        ("a", "  naive consumer ops/s", a.get("naive_ops_per_s"), ""),
        ("a", "  ratio service / naive", a.get("ratio"), "≥ 100"),
        ("b", "0 ms Stripe: service ops/s", b.get("service_ops_per_s"), ""),
        ("b", "  aiokafka consume+produce ceiling ops/s", b.get("aiokafka_ceiling_ops_per_s"), ""),
        ("b", "  ratio service / ceiling", b.get("ratio"), "≥ 0.5"),
        (
            "c",
            f"in-service time outside Stripe at {c.get('offered_ops_per_s')} ops/s: p50 ms",
            c.get("p50_ms"),
            "",
        ),
        ("c", "  p99 ms", c.get("p99_ms"), "< 10"),
        (
            "c",
            f"  the same at {half.get('offered_ops_per_s')} ops/s (half the target): p50 ms",
            half.get("p50_ms"),
            "",
        ),
        ("c", "    p99 ms", half.get("p99_ms"), "< 10"),
        (
            "d",
            f"peak RSS MiB, {d.get('backlog_records')}-record backlog",
            d.get("peak_rss_mib"),
            "< 250",
        ),
        (
            "e",
            "STRIPE_RATE_LIMIT=50: most calls in any second",
            e.get("max_calls_in_any_second"),
            "≤ 50",
        ),
        ("e", "  429 responses", e.get("responses_429"), "0"),
        (
            "m",
            "meter events/s via the v2 stream (Redis ledger)",
            m.get("service_events_per_s"),
            "≥ 20000",
        ),
        ("m", "  aiokafka alone: read + decode records/s", m.get("aiokafka_read_decode_per_s"), ""),
        ("m", "  identifiers delivered more than once", m.get("delivered_more_than_once"), "0"),
    ]
    lines = [f"{'':2} {'measure':<58} {'value':>10}  target", "-" * 84]
    lines += [f"{k:2} {name:<58} {value!s:>10}  {target}" for k, name, value, target in rows]
    return "\n".join(lines)


@contextlib.contextmanager
def environment() -> Iterator[tuple[dict[str, str], StandIn, Path]]:
    work = ROOT / ".local" / "bench" / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    print(f"bench: logs in {work.relative_to(ROOT)}", flush=True)
    if True:
        with local_stack(work / "stack") as stack:
            standin = StandIn(work / "standin.log")
            try:
                yield stack, standin, work
            finally:
                standin.close()


async def main_async(scenarios: str, scale: float) -> dict[str, Any]:
    with environment() as (stack, standin, work):
        bench = Bench(stack, standin, work, scale)
        for name in scenarios:
            print(f"bench: scenario {name} ...", flush=True)
            started = time.perf_counter()
            await getattr(bench, f"scenario_{name}")()
            took = time.perf_counter() - started
            print(f"bench: scenario {name} done in {took:.0f}s: {bench.results[name]}", flush=True)
        return bench.results


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", default="abcdem")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply record counts (quick runs: 0.1)"
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    results = asyncio.run(main_async(args.scenarios, args.scale))
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "make bench",
        "scale": args.scale,
        "machine": machine(),
        "results": results,
        "table": table(results),
    }
    print()
    print(report["table"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

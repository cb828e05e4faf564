"""What every scenario stands on: the stack and the stand-in it runs against, fresh topics,
records published and replies read through the service's own Kafka code, the service as a
real process, the baselines as processes, the stand-in's control plane. Scenarios reach
Kafka, the stack and the stand-in only through this module."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec

from consumer.conductor.client import ConductorClient
from consumer.kafka.admin import ensure_topics
from consumer.kafka.connection import KafkaConnection
from consumer.kafka.producer import RecordSink
from consumer.kafka.reader import topic_reader
from consumer.kafka.records import InboundRecord, OutboundRecord
from tests.support.process import ServiceProcess
from tests.support.stack import ROOT, StandIn, add_conductor, standin_request

# send(topic, key, value): one record through a producer the harness opened.
Send = Callable[[str, bytes, bytes], Awaitable[None]]


class Harness:
    def __init__(self, stack: dict[str, str], standin: StandIn, work: Path, scale: float) -> None:
        self.stack = stack
        self.standin = standin
        self.work = work
        self.scale = scale
        self.bootstrap = stack["KAFKA_BOOTSTRAP_SERVERS"]
        self.connection = KafkaConnection(self.bootstrap, client_id="bench")
        self.results: dict[str, Any] = {}  # by scenario, as they finish

    def n(self, count: int) -> int:
        """A record count scaled by --scale (never below 10)."""
        return max(10, int(count * self.scale))

    async def topics(self, name: str, partitions: int) -> dict[str, str]:
        """Fresh topics and group for one service run, as its environment variables."""
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

    @contextlib.asynccontextmanager
    async def producer(self, linger_ms: int) -> AsyncIterator[Send]:
        sink = RecordSink(self.connection, linger_ms=linger_ms)
        await sink.start()

        async def send(topic: str, key: bytes, value: bytes) -> None:
            await sink.send(OutboundRecord(topic, key, value))

        try:
            yield send
        finally:
            await sink.stop()

    async def publish_records(
        self, topic: str, records: Iterable[tuple[bytes, bytes]], chunk: int
    ) -> None:
        """(key, value) records, `chunk` of them in flight at a time."""
        batches = iter(records)
        async with self.producer(linger_ms=20) as send:
            while batch := list(itertools.islice(batches, chunk)):
                await asyncio.gather(*(send(topic, key, value) for key, value in batch))

    async def publish(self, topic: str, keys: list[str]) -> None:
        """One create_charge request per key, keyed by it."""
        await self.publish_records(topic, ((k.encode(), charge(k)) for k in keys), 2000)

    async def reply_times(self, topic: str, count: int, timeout_s: float) -> list[float]:
        """Kafka timestamps (seconds) of the first `count` replies."""
        async with topic_reader(self.connection, topic) as reader:
            records = await reader.collect(lambda rs: len(rs) >= count, timeout_s=timeout_s)
        return sorted(r.timestamp_ms / 1000 for r in records)[:count]

    async def records(self, topic: str, count: int, timeout_s: float) -> list[InboundRecord]:
        """The topic's records from the start, once `count` have arrived."""
        async with topic_reader(self.connection, topic) as reader:
            return await reader.collect(lambda rs: len(rs) >= count, timeout_s=timeout_s)

    async def conductor(self) -> ConductorClient:
        """Conductor, joining the stack (started now unless STACK_ENV_FILE names one with it)."""
        env = await asyncio.to_thread(add_conductor, self.work / "stack")
        return ConductorClient(env["CONDUCTOR_URL"])

    def service(self, topics: dict[str, str], name: str, **env: str) -> ServiceProcess:
        """The service as its own process, on the stack and the stand-in (not started)."""
        environ = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
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

    async def baseline(self, name: str, *args: str) -> str:
        """Run ``python -m bench.baselines.<name> --bootstrap ... *args`` to completion; its
        stdout."""
        command = ["-m", f"bench.baselines.{name}", "--bootstrap", self.bootstrap, *args]
        return await run_process(command)

    @contextlib.asynccontextmanager
    async def profiled(self, pid: int, name: str) -> AsyncIterator[None]:
        """Sample ``pid`` with py-spy while the block runs, when ``BENCH_PROFILE`` asks for it
        (and py-spy is installed): ``svg``, a flame graph in bench/results/<name>.svg;
        ``raw``, collapsed stacks (one line per stack, for grep) beside the run's logs."""
        kind = os.environ.get("BENCH_PROFILE", "")
        py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.defpath}")
        if kind not in {"svg", "raw"} or py_spy is None:
            yield
            return
        out = ROOT / "bench" / "results" / f"{name}.svg" if kind == "svg" else self.work / name
        command = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
        process = await asyncio.create_subprocess_exec(
            *command, "--format", "flamegraph" if kind == "svg" else "raw", "--output", str(out),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            yield
        finally:
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), 60)

    async def standin_config(self, **config: Any) -> None:
        """Reset the stand-in (counters and state), then configure it."""
        await standin_request(self.standin.url, "POST", "/_standin/reset")
        await standin_request(self.standin.url, "POST", "/_standin/config", config)

    async def standin_stats(self, *, full: bool = False) -> dict[str, Any]:
        path = "/_standin/stats?full=1" if full else "/_standin/stats"
        stats: dict[str, Any] = await standin_request(self.standin.url, "GET", path)
        return stats


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rate(times: list[float]) -> float:
    """Records per second between the first and the last timestamp."""
    span = times[-1] - times[0]
    return (len(times) - 1) / span if span > 0 else float("nan")


def steady_rate(times: list[float]) -> float:
    """Records per second once the first second (the connection pool's warm-up) is past;
    over the whole run when it was shorter than that (a quick run's small --scale)."""
    steady = [t for t in times if t >= times[0] + 1.0]
    return rate(steady if len(steady) >= 2 else times)


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


async def run_process(arguments: list[str]) -> str:
    """Run a helper Python process to completion; its stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *arguments, stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 600)
    if process.returncode != 0:
        raise RuntimeError(f"{arguments[1]} exited with {process.returncode}")
    return out.decode()

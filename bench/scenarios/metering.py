"""(m): meter events through the v2 stream with the Redis ledger: events per second of the
service beside aiokafka alone reading and decoding the same topic, and how many
identifiers the stand-in saw delivered more than once (must be none)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import msgspec

from bench.harness import Harness, process_cpu_seconds
from bench.table import Row, at_least, at_most

TARGET_EVENTS_PER_S = 50_000.0


async def meter_events_through_the_stream(h: Harness) -> dict[str, Any]:
    await h.standin_config(latency_ms=0)
    count = h.n(200_000)
    topics = await h.topics("m", 6)
    meter_topic = topics["CONSUMER_METER_TOPIC"]
    run = uuid.uuid4().hex[:8]
    records = ((f"p{i % 97}".encode(), meter_event(i, run)) for i in range(count))
    await h.publish_records(meter_topic, records, 5000)
    read_out = await h.baseline(
        "read_decode",
        "--topic", meter_topic,
        "--group", topics["CONSUMER_GROUP_ID"] + ".read",
        "--count", str(count),
    )  # fmt: skip
    ceiling = float(read_out.strip().splitlines()[-1])
    env = {"STRIPE_METER_EVENTS_BASE": h.standin.url, "LOG_LEVEL": "WARNING"}
    if "REDIS_URL" in h.stack:
        env["CONSUMER_REDIS_URL"] = h.stack["REDIS_URL"]
    service = h.service(topics, "m-service", **env).start()
    samples: list[tuple[float, int]] = []
    cpu_before = process_cpu_seconds(service.pid)
    try:
        async with h.profiled(service.pid, "m-profile"):
            while True:
                stats = await h.standin_stats()
                samples.append((time.perf_counter(), int(stats["meter_events_delivered"])))
                if samples[-1][1] >= count:
                    break
                await asyncio.sleep(0.5)
        cpu_seconds = process_cpu_seconds(service.pid) - cpu_before
    finally:
        service.terminate()
    full = await h.standin_stats()
    return {
        "events": count,
        "ledger": "redis" if "REDIS_URL" in h.stack else "memory",
        "service_events_per_s": round(delivery_rate(samples), 1),
        "cpu_us_per_event": round(cpu_seconds / count * 1e6, 1),
        "aiokafka_read_decode_per_s": round(ceiling, 1),
        "stream_requests": full["meter_stream_requests"],
        "identifiers_delivered": full["meter_identifiers"],
        "delivered_more_than_once": len(full["meter_identifiers_delivered_more_than_once"]),
    }


def delivery_rate(samples: list[tuple[float, int]]) -> float:
    """Events per second from the first sample (time, delivered so far) that saw deliveries
    to the last; NaN when they all came within one sample (a quick run's small --scale)."""
    moving = [(t, n) for t, n in samples if n > 0]
    (t0, n0), (t1, n1) = moving[0], moving[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")


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


def rows(r: dict[str, Any]) -> list[Row]:
    rate, twice = r.get("service_events_per_s"), r.get("delivered_more_than_once")
    return [
        Row("m", "meter events/s via the v2 stream (Redis ledger), 1 process", rate,
            ">= 50000", at_least(rate, TARGET_EVENTS_PER_S)),
        Row("m", "  CPU per event of the service (user+sys), µs", r.get("cpu_us_per_event")),
        Row("m", "  aiokafka alone: read + decode records/s", r.get("aiokafka_read_decode_per_s")),
        Row("m", "  identifiers delivered more than once", twice, "0", at_most(twice, 0)),
    ]  # fmt: skip

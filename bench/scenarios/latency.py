"""(c): the time a request spends in the service outside Stripe (fetched to reply
acknowledged, minus its time in Stripe calls), p50 and p99, with Stripe answering after
100 ms and requests offered at a steady 1,500 ops/s (the issue's row), and at 500 ops/s
for comparison. The distribution goes to the chart bench/results/c-latency.png."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from typing import Any

from bench.harness import Harness, charge
from bench.table import Row

RATES_OPS_PER_S = (1_500.0, 500.0)
TARGET_P99_MS = 10.0


async def latency_outside_stripe(h: Harness) -> dict[str, Any]:
    by_rate = [await _at_rate(h, target) for target in RATES_OPS_PER_S]
    summary = {k: v for k, v in by_rate[0].items() if k != "percentiles_1_to_99_ms"}
    return {**summary, "by_rate": by_rate}


async def _at_rate(h: Harness, target: float) -> dict[str, Any]:
    await h.standin_config(latency_ms=100)
    topics = await h.topics("c", 1)
    service = h.service(topics, f"c-service-{int(target)}").start()
    sent = await _offer(h, topics["CONSUMER_REQUEST_TOPICS"], target, max(5, int(15 * h.scale)))
    await h.reply_times(topics["CONSUMER_REPLY_TOPIC"], sent, 120)
    service.terminate()
    return _percentiles(target, service.log_lines())


async def _offer(h: Harness, topic: str, target: float, seconds: int) -> int:
    """Publish at `target` records per second for `seconds`; how many were sent."""
    sent = 0
    async with h.producer(linger_ms=1) as send:
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * target) - sent
            if due > 0:
                keys = [f"c-{sent + i}" for i in range(due)]
                await asyncio.gather(*(send(topic, k.encode(), charge(k)) for k in keys))
                sent += due
            await asyncio.sleep(0.005)
    return sent


def _percentiles(target: float, log_lines: list[str]) -> dict[str, Any]:
    parts: dict[str, list[float]] = {"overhead": [], "queued": [], "reply": []}
    for line in log_lines:
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
        "percentiles_1_to_99_ms": [round(v, 3) for v in statistics.quantiles(overheads, n=100)],
        "breakdown_p50_p99_ms": {
            "waiting_to_start": [pct(parts["queued"], 50), pct(parts["queued"], 99)],
            "reply_until_kafka_ack": [pct(parts["reply"], 50), pct(parts["reply"], 99)],
        },
        "measured": "per request, fetched to reply acknowledged, minus time in Stripe calls",
    }


def rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for point in r.get("by_rate", [r]):
        p99 = point.get("p99_ms")
        rate = point.get("offered_ops_per_s")
        target, met = ("< 10", None if p99 is None else p99 < TARGET_P99_MS)
        if rate != RATES_OPS_PER_S[0]:
            target, met = "", None  # the row is at 1,500 ops/s; this one is context
        out += [
            Row(
                "c", f"in-service time outside Stripe at {rate} ops/s: p50 ms", point.get("p50_ms")
            ),
            Row("c", "  p99 ms", p99, target, met),
        ]
    return out

"""(c): the time a request spends in the service outside Stripe, p50 and p99, at half of
(a)'s measured rate (as the issue asks) and at 500 ops/s (half of the 1,000 ops/s target),
since a faster (a) makes the first a heavier load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from typing import Any

from bench.harness import Harness, charge

# Half of the 1,000 ops/s target; also (c)'s rate when (a) was not run.
TARGET_HALF_OPS_PER_S = 500.0


async def latency_outside_stripe(h: Harness) -> dict[str, Any]:
    measured = h.results.get("a", {}).get("service_ops_per_s", TARGET_HALF_OPS_PER_S * 2)
    result = await _at_rate(h, max(1.0, measured / 2))
    if abs(result["offered_ops_per_s"] - TARGET_HALF_OPS_PER_S) > 0.1 * TARGET_HALF_OPS_PER_S:
        result["at_target_half"] = await _at_rate(h, TARGET_HALF_OPS_PER_S)
    return result


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
        "breakdown_p50_p99_ms": {
            "waiting_to_start": [pct(parts["queued"], 50), pct(parts["queued"], 99)],
            "reply_until_kafka_ack": [pct(parts["reply"], 50), pct(parts["reply"], 99)],
        },
        "measured": "per request, fetched to reply acknowledged, minus time in Stripe calls",
    }

"""(r): N replicas of one consumer group against one, with Stripe answering after 100 ms
(where one process is CPU-bound): the same backlog on six partitions answered by one
process, then by N; the ratio of their steady reply rates (target >= 0.9 N, on a machine
with N cores free for the replicas).

The replicas join (and the group settles) before the backlog is published, so the figure is
the group's steady throughput, not its start. On a 2-core machine the broker and the
stand-in share the cores with the replicas: N = 2 is the most it can run, and a ratio below
2 there says the machine ran out of cores, not that the group does not scale (the issue's
16-core figures, 8.8-9.9x at N = 8, are the issue's)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from bench.harness import Harness, steady_rate
from bench.table import Row, at_least

REPLICAS = (1, 2)
PARTITIONS = 6


async def group_throughput(h: Harness, replicas: int, count: int) -> float:
    """Steady replies/s of `replicas` processes in one group over a backlog of `count`."""
    topics = await h.topics(f"r{replicas}", PARTITIONS)
    services = [h.service(topics, f"r{replicas}-{i}", LOG_LEVEL="WARNING") for i in range(replicas)]
    try:
        for service in services:
            await asyncio.to_thread(service.start)
        # Settled: each member has had the assignment every later join gave it.
        deadline = time.monotonic() + 120
        while not all(
            service.metric("stripe_consumer_rebalances_total") >= replicas - i
            for i, service in enumerate(services)
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{replicas} replicas never settled into one group")
            await asyncio.sleep(0.2)
        keys = [f"r{replicas}-{i}" for i in range(count)]
        await h.publish(topics["CONSUMER_REQUEST_TOPICS"], keys)
        times = await h.reply_times(topics["CONSUMER_REPLY_TOPIC"], count, 900)
    finally:
        for service in services:
            service.terminate()
    return steady_rate(times)


async def replicas_against_one(h: Harness) -> dict[str, Any]:
    await h.standin_config(latency_ms=100)
    count = h.n(20_000)
    rates = {n: await group_throughput(h, n, count) for n in REPLICAS}
    n = max(REPLICAS)
    return {
        "stripe_latency_ms": 100,
        "partitions": PARTITIONS,
        "records": count,
        "cores": os.cpu_count(),
        # The shape bench/charts.py draws (r) from, and rows() reads.
        "by_replicas": [{"replicas": k, "ops_per_s": round(v, 1)} for k, v in rates.items()],
        "replicas": n,
        "ratio": round(rates[n] / rates[1], 2),
        "target": f">= {0.9 * n:.1f} (0.9 N) with N free cores",
        "note": "broker, stand-in and replicas share the machine's cores",
    }


def rows(r: dict[str, Any]) -> list[Row]:
    """(r): N replicas against one; met when the ratio reaches 0.9 N."""
    rates = [point["ops_per_s"] for point in r.get("by_replicas", [])]
    ratio, n = r.get("ratio"), r.get("replicas")
    return [
        Row("r", f"{n} replicas / one, 100 ms Stripe, {r.get('cores')} cores", ratio,
            f">= {0.9 * n:.1f}" if n else "", at_least(ratio, 0.9 * n) if n else None),
        Row("r", "  ops/s by replicas", " / ".join(str(v) for v in rates) or None),
    ]  # fmt: skip

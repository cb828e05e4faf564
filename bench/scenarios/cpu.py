"""(cpu): the service's own CPU per request, with the stand-in answering at once.

Process CPU time (user + system, from /proc) of the service divided by the requests it
answered, over a window that starts after a warm-up (imports, group join and the first
connections are not counted). Far less sensitive to other load on the machine than
throughput: a busy neighbour makes the service slower, not costlier.

With ``BENCH_PROFILE=svg`` the measured window is also sampled by py-spy (a flame graph
into bench/results/cpu-profile.svg), which is how the README explains where the time goes.
"""

from __future__ import annotations

from typing import Any

from bench.harness import Harness, process_cpu_seconds
from bench.table import Row, at_most

TARGET_US = 100.0


async def cpu_per_request(h: Harness) -> dict[str, Any]:
    await h.standin_config(latency_ms=0)
    warm, count = h.n(2_000), h.n(20_000)
    topics = await h.topics("cpu", 1)
    requests, replies = topics["CONSUMER_REQUEST_TOPICS"], topics["CONSUMER_REPLY_TOPIC"]
    service = h.service(topics, "cpu-service").start()
    try:
        await h.publish(requests, [f"warm-{i}" for i in range(warm)])
        await h.reply_times(replies, warm, 120)
        async with h.profiled(service.pid, "cpu-profile"):
            before = process_cpu_seconds(service.pid)
            await h.publish(requests, [f"cpu-{i}" for i in range(count)])
            times = await h.reply_times(replies, warm + count, 600)
            spent = process_cpu_seconds(service.pid) - before
    finally:
        service.terminate()
    measured = times[warm:]
    span = measured[-1] - measured[0] if len(measured) > 1 else float("nan")
    return {
        "stripe_latency_ms": 0,
        "requests": count,
        "cpu_seconds": round(spent, 3),
        "cpu_us_per_request": round(spent / count * 1e6, 1),
        "wall_ops_per_s": round((len(measured) - 1) / span, 1) if span > 0 else None,
        "measured": "service process user+sys CPU / requests answered, after a warm-up",
    }


def rows(r: dict[str, Any]) -> list[Row]:
    value = r.get("cpu_us_per_request")
    return [
        Row("cpu", "CPU per request, Stripe answering at once: us", value, "<= 100",
            at_most(value, TARGET_US)),
        Row("cpu", "  the same run's wall-clock rate: ops/s", r.get("wall_ops_per_s")),
    ]  # fmt: skip

"""(a) and (b): how many requests per second the service answers from one partition.

a  the stand-in answers after 100 ms: the service at several in-flight limits
   (CONSUMER_MAX_IN_FLIGHT, with as many Stripe connections), beside a naive consumer (one
   awaited Stripe call per record, as a user writes it by hand). At 100 ms per call a limit
   of L cannot pass L x 10 calls a second, so the sweep shows where the process, not the
   limit, is what stops it (the chart bench/results/a-in-flight.png).
b  the stand-in answers at once: the service beside aiokafka alone consuming and producing
   (the ceiling the service's own work is measured against)
"""

from __future__ import annotations

from typing import Any

from bench.harness import Harness, rate, steady_rate
from bench.table import Row, at_least

IN_FLIGHT_LIMITS = (256, 512, 1024, 2048)
TARGET_A_OPS = 10_000.0
TARGET_A_RATIO = 1_000.0
TARGET_B_RATIO = 0.5


async def service_vs_naive_consumer(h: Harness) -> dict[str, Any]:
    await h.standin_config(latency_ms=100)
    naive_n = h.n(100)
    topics = await h.topics("a-naive", 1)
    await h.publish(topics["CONSUMER_REQUEST_TOPICS"], [f"naive-{i}" for i in range(naive_n)])
    await h.baseline(
        "naive_consumer",
        "--topic", topics["CONSUMER_REQUEST_TOPICS"],
        "--reply-topic", topics["CONSUMER_REPLY_TOPIC"],
        "--group", topics["CONSUMER_GROUP_ID"],
        "--api-base", h.standin.url,
        "--count", str(naive_n),
    )  # fmt: skip
    naive = rate(await h.reply_times(topics["CONSUMER_REPLY_TOPIC"], naive_n, 60))
    sweep = [await _at_in_flight(h, limit) for limit in IN_FLIGHT_LIMITS]
    best = max(sweep, key=lambda point: point["ops_per_s"])
    return {
        "stripe_latency_ms": 100,
        "partitions": 1,
        "naive_records": naive_n,
        "naive_ops_per_s": round(naive, 1),
        "service_records": best["records"],
        "service_ops_per_s": best["ops_per_s"],
        "best_in_flight": best["in_flight"],
        "ratio": round(best["ops_per_s"] / naive, 1),
        "by_in_flight": sweep,
    }


async def _at_in_flight(h: Harness, limit: int) -> dict[str, Any]:
    """Steady replies per second with CONSUMER_MAX_IN_FLIGHT=limit (and as many
    connections), from a backlog big enough for about ten seconds at the limit's ceiling."""
    count = h.n(limit * 10 * 10)
    topics = await h.topics(f"a-{limit}", 1)
    await h.publish(topics["CONSUMER_REQUEST_TOPICS"], [f"svc-{i}" for i in range(count)])
    env = {"CONSUMER_MAX_IN_FLIGHT": str(limit), "STRIPE_MAX_CONNECTIONS": str(limit)}
    service = h.service(topics, f"a-service-{limit}", **env).start()
    try:
        times = await h.reply_times(topics["CONSUMER_REPLY_TOPIC"], count, 600)
    finally:
        service.terminate()
    return {"in_flight": limit, "records": count, "ops_per_s": round(steady_rate(times), 1)}


async def service_vs_aiokafka_ceiling(h: Harness) -> dict[str, Any]:
    await h.standin_config(latency_ms=0)
    count = h.n(20_000)
    topics = await h.topics("b", 1)
    await h.publish(topics["CONSUMER_REQUEST_TOPICS"], [f"b-{i}" for i in range(count)])
    ceiling_out = await h.baseline(
        "ceiling",
        "--topic", topics["CONSUMER_REQUEST_TOPICS"],
        "--reply-topic", topics["CONSUMER_REPLY_TOPIC"] + ".ceiling",
        "--group", topics["CONSUMER_GROUP_ID"] + ".ceiling",
        "--count", str(count),
    )  # fmt: skip
    ceiling = float(ceiling_out.strip().splitlines()[-1])
    service = h.service(topics, "b-service").start()
    try:
        times = await h.reply_times(topics["CONSUMER_REPLY_TOPIC"], count, 600)
    finally:
        service.terminate()
    steady = steady_rate(times)
    return {
        "stripe_latency_ms": 0,
        "records": count,
        "service_ops_per_s": round(steady, 1),
        "aiokafka_ceiling_ops_per_s": round(ceiling, 1),
        "ratio": round(steady / ceiling, 3),
    }


def a_rows(r: dict[str, Any]) -> list[Row]:
    ops, ratio = r.get("service_ops_per_s"), r.get("ratio")
    return [
        Row("a", f"100 ms Stripe, 1 partition, 1 process: ops/s (in flight "
            f"{r.get('best_in_flight')})", ops, ">= 10000", at_least(ops, TARGET_A_OPS)),
        Row("a", "  naive consumer ops/s", r.get("naive_ops_per_s")),
        Row("a", "  ratio service / naive", ratio, ">= 1000", at_least(ratio, TARGET_A_RATIO)),
        *(
            Row("a", f"  in flight {point['in_flight']}: ops/s", point["ops_per_s"])
            for point in r.get("by_in_flight", [])
        ),
    ]  # fmt: skip


def b_rows(r: dict[str, Any]) -> list[Row]:
    ratio = r.get("ratio")
    return [
        Row("b", "0 ms Stripe: service ops/s", r.get("service_ops_per_s")),
        Row("b", "  aiokafka consume+produce ceiling ops/s", r.get("aiokafka_ceiling_ops_per_s")),
        Row("b", "  ratio service / ceiling", ratio, ">= 0.5", at_least(ratio, TARGET_B_RATIO)),
    ]

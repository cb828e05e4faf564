"""(a) and (b): how many requests per second the service answers from one partition.

a  the stand-in answers after 100 ms: the service beside a naive consumer (one awaited
   Stripe call per record, as a user writes it by hand)
b  the stand-in answers at once: the service beside aiokafka alone consuming and producing
   (the ceiling the service's own work is measured against)
"""

from __future__ import annotations

from typing import Any

from bench.harness import Harness, rate, steady_rate


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

    count = h.n(15_000)
    topics = await h.topics("a-service", 1)
    await h.publish(topics["CONSUMER_REQUEST_TOPICS"], [f"svc-{i}" for i in range(count)])
    service = h.service(topics, "a-service").start()
    try:
        times = await h.reply_times(topics["CONSUMER_REPLY_TOPIC"], count, 600)
    finally:
        service.terminate()
    steady = steady_rate(times)
    return {
        "stripe_latency_ms": 100,
        "partitions": 1,
        "naive_records": naive_n,
        "naive_ops_per_s": round(naive, 1),
        "service_records": count,
        "service_ops_per_s": round(steady, 1),
        "ratio": round(steady / naive, 1),
    }


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

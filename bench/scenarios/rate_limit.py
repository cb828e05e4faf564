"""(e): with STRIPE_RATE_LIMIT=50 and the stand-in refusing calls beyond 50 a second, the
most calls the stand-in saw in any one second, and how many it answered 429."""

from __future__ import annotations

from typing import Any

from bench.harness import Harness
from bench.table import Row, at_most


async def calls_per_second_under_a_limit(h: Harness) -> dict[str, Any]:
    await h.standin_config(latency_ms=0, rate_limit_per_second=50)
    count = h.n(1_000)
    topics = await h.topics("e", 3)
    await h.publish(topics["CONSUMER_REQUEST_TOPICS"], [f"e-{i}" for i in range(count)])
    service = h.service(topics, "e-service", STRIPE_RATE_LIMIT="50").start()
    try:
        await h.reply_times(topics["CONSUMER_REPLY_TOPIC"], count, 600)
    finally:
        service.terminate()
    stats = await h.standin_stats(full=True)
    per_second = sorted(stats["calls_per_second"].items())
    return {
        "rate_limit": 50,
        "calls": stats["calls"],
        "max_calls_in_any_second": max(v for _, v in per_second),
        "responses_429": stats["status_counts"].get("429", 0),
    }


def rows(r: dict[str, Any]) -> list[Row]:
    most, refused = r.get("max_calls_in_any_second"), r.get("responses_429")
    return [
        Row("e", "STRIPE_RATE_LIMIT=50: most calls in any second", most, "<= 50",
            at_most(most, 50)),
        Row("e", "  429 responses", refused, "0", at_most(refused, 0)),
    ]  # fmt: skip

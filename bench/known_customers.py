"""What the known-customer cache (``CONSUMER_METER_KNOWN_CUSTOMERS_SECONDS``) costs:
``python -m bench.known_customers [--events N]`` (the stand-in and a private redis-server
in their own processes, ~1 min).

For 10, 100, 1,000 and 10,000 distinct customers (each event's customer drawn at random,
every one existing), ``events`` meter events go through the cache as the service runs it
(``consumer/metering/verdicts/customers.py``: the real gateway, stripe-python, Redis). It
counts the GETs sent to Stripe and the process CPU per event: a replica starting cold
(empty in-process cache and Redis), a second replica after it (Redis warm), and steady
state (every id known in-process). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry

from consumer.app import redactor_for
from consumer.contract.requests import CreateMeterEvent
from consumer.metering.verdicts.customers import KnownCustomers
from consumer.metering.verdicts.intake import StripeReader
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import load_settings
from consumer.shared_state.redis_client import RedisConnection
from consumer.stripe.gateway import open_gateway
from tests.support.redis_server import RedisServer
from tests.support.stack import StandIn

DISTINCT = (10, 100, 1_000, 10_000)
KEY = "sk_test_51KnownCustomersBench"


async def _customers(url: str, count: int) -> list[str]:
    """``count`` customers created in the stand-in (50 at a time)."""
    made: list[str] = []
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one() -> str:
            async with session.post(url + "/v1/customers", data={}) as response:
                response.raise_for_status()
                return str((await response.json())["id"])

        while len(made) < count:
            made += await asyncio.gather(*(one() for _ in range(min(50, count - len(made)))))
    return made


async def _pass(cache: KnownCustomers, events: list[CreateMeterEvent]) -> dict[str, float]:
    """Every event as the service checks it: the fast path when known in-process, else the
    lookup (in the ordinary path, concurrently, as the pipeline would)."""
    before_gets, cpu = cache.stripe_lookups, time.process_time()
    slow = [e for e in events if not cache.known_locally(e)]
    await asyncio.gather(*(cache.check(e) for e in slow))
    cpu_us = (time.process_time() - cpu) * 1e6
    return {
        "gets": cache.stripe_lookups - before_gets,
        "cpu_us_per_event": round(cpu_us / len(events), 2),
    }


async def measure(events_count: int, redis_url: str, standin_url: str) -> dict[str, Any]:
    environ = {
        "STRIPE_API_KEY": KEY,
        "STRIPE_API_BASE": standin_url,
        "KAFKA_BOOTSTRAP_SERVERS": "x:1",
    }
    settings = load_settings(environ)
    metrics = ServiceMetrics(CollectorRegistry())
    results: dict[str, Any] = {"events": events_count}
    async with open_gateway(settings, redactor_for(settings)) as gateway:
        reader = StripeReader(gateway, settings)

        def lookup(integration: str, path: str) -> Any:
            return reader.get(integration, path, {})

        for distinct in DISTINCT:
            ids = await _customers(standin_url, distinct)
            rng = random.Random(distinct)
            events = [
                CreateMeterEvent(event_name="api_calls", customer_id=rng.choice(ids))
                for _ in range(events_count)
            ]
            redis = RedisConnection(redis_url, metrics, prefix=f"bench-{uuid.uuid4().hex[:8]}:")
            try:
                first = KnownCustomers(lookup, redis, found_seconds=3600)
                second = KnownCustomers(lookup, redis, found_seconds=3600)
                results[str(distinct)] = {
                    "distinct_seen": len({e.customer_id for e in events}),
                    "cold_replica": await _pass(first, events),
                    "second_replica_redis_warm": await _pass(second, events),
                    "steady_state": await _pass(first, events),
                }
            finally:
                await redis.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-known-customers-"))
    standin = StandIn(work / "standin.log")
    server = RedisServer(work / "redis").start()
    try:
        print(json.dumps(await measure(args.events, server.url, standin.url), indent=2))
    finally:
        standin.close()
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())

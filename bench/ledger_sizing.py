"""Bytes per identifier in Redis, measured, and the sizing table that follows from them:
``python -m bench.ledger_sizing [--count N]`` (a private redis-server, ~1 min).

Two layouts, each filled with ``count`` identifiers (36-character UUIDs, what producers
usually send) and measured as Redis's ``used_memory`` grew:

- ``key_per_identifier``: the ledger before this one: a key per identifier, ``delivered`` with
  the window as its TTL (written here as that ledger wrote it);
- ``bucketed_hashes``: ``consumer/metering/ledgers/redis.py`` as it runs, sized for the rate
  that fills one bucket with ``count`` identifiers (as a large producer's volume would).

And the reconciliation detail the usage book keeps per delivered event for 48 hours
(``consumer/metering/usage.py``), the same way: ``usage_key_per_event`` (a key per event, as
the book wrote it before) against ``usage_bucketed_details`` (as it runs), each with the
Redis CPU it took per event (``used_cpu_user + used_cpu_sys``).

Prints JSON: bytes per identifier of each, and memory for 1k, 10k, 100k events/s kept for
24 h, 7 d and 35 d (in buckets an identifier stays up to an eighth of the window beyond it:
the table counts the average, window x 17/16).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from prometheus_client import CollectorRegistry

from consumer.metering.events import MeterEvent
from consumer.metering.ledgers.ledger_layout import GROUPS, bucket_seconds, shards_for
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.ledgers.redis import RedisIdentifierLedger
from consumer.metering.usage import (
    DETAIL_SECONDS,
    SEP,
    SUMS_SECONDS,
    RedisUsageBook,
    detail_of,
    hour_of,
)
from consumer.observability.metrics import ServiceMetrics
from consumer.settings.secret import Secret
from consumer.settings.stripe_credentials import StripeCredential
from consumer.shared_state.redis_client import RedisConnection
from tests.support.redis_server import RedisServer

WINDOW_SECONDS = 35 * 86_400
BUCKET_SECONDS = bucket_seconds(WINDOW_SECONDS)
SCOPE = LedgerScope("default", None)
RATES = (1_000, 10_000, 100_000)
KEPT = {"24h": 86_400, "7d": 7 * 86_400, "35d": 35 * 86_400}


async def used_memory(client: Any) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def key_per_identifier(client: Any, identifiers: list[str]) -> None:
    prefix = "stripe-consumer:meter:"
    for start in range(0, len(identifiers), 1_000):
        async with client.pipeline(transaction=False) as pipe:
            for identifier in identifiers[start : start + 1_000]:
                pipe.set(prefix + SCOPE.key(identifier), "delivered", px=WINDOW_SECONDS * 1000)
            await pipe.execute()


async def bucketed_hashes(url: str, identifiers: list[str]) -> None:
    connection = RedisConnection(url, ServiceMetrics(CollectorRegistry()))
    rate = len(identifiers) / BUCKET_SECONDS  # one bucket holds them all
    ledger = RedisIdentifierLedger(
        connection, window_seconds=WINDOW_SECONDS, lease_seconds=60, owner="sizing",
        events_per_second=rate,
    )  # fmt: skip
    for start in range(0, len(identifiers), 100):
        batch = identifiers[start : start + 100]
        await ledger.claim(SCOPE, batch)
        await ledger.mark_delivered(SCOPE, batch)
    await connection.close()


def usage_events(identifiers: list[str]) -> list[MeterEvent]:
    credential = StripeCredential("default", Secret("sk_test_sizing"))
    return [
        MeterEvent(SCOPE, credential, "api_requests", identifier,
                   {"stripe_customer_id": f"cus_{i % 5000:014d}", "value": "1"}, None, "k")
        for i, identifier in enumerate(identifiers)
    ]  # fmt: skip


async def usage_key_per_event(client: Any, identifiers: list[str]) -> None:
    now, events = time.time(), usage_events(identifiers)
    for start in range(0, len(events), 100):
        async with client.pipeline(transaction=False) as pipe:
            for event in events[start : start + 100]:
                detail = detail_of(event, now)
                sums = f"stripe-consumer:meter-sums:default:-:{hour_of(event, now)}"
                key = f"stripe-consumer:meter-usage:default:-:{event.identifier}"
                pipe.set(key, detail, px=int(DETAIL_SECONDS * 1000))
                pipe.hincrbyfloat(sums, SEP.join(detail.split(SEP)[:2]), 1)
                pipe.pexpire(sums, int(SUMS_SECONDS * 1000))
            await pipe.execute()


async def usage_bucketed_details(url: str, identifiers: list[str]) -> None:
    connection = RedisConnection(url, ServiceMetrics(CollectorRegistry()))
    rate = len(identifiers) / bucket_seconds(DETAIL_SECONDS)  # one bucket holds them all
    book = RedisUsageBook(connection, events_per_second=rate)
    events = usage_events(identifiers)
    for start in range(0, len(events), 100):
        await book.delivered(SCOPE, events[start : start + 100])
    await connection.close()


async def redis_cpu(client: Any) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(url: str, count: int) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    results: dict[str, Any] = {"identifiers": count}
    layouts: dict[str, Callable[[list[str]], Awaitable[None]]] = {
        "key_per_identifier": lambda ids: key_per_identifier(client, ids),
        "bucketed_hashes": lambda ids: bucketed_hashes(url, ids),
        "usage_key_per_event": lambda ids: usage_key_per_event(client, ids),
        "usage_bucketed_details": lambda ids: usage_bucketed_details(url, ids),
    }
    for name, fill in layouts.items():
        await client.flushall()
        before, cpu_before = await used_memory(client), await redis_cpu(client)
        await fill([str(uuid.uuid4()) for _ in range(count)])
        after, cpu_after = await used_memory(client), await redis_cpu(client)
        results[f"{name}_bytes_per_identifier"] = round((after - before) / count, 1)
        results[f"{name}_redis_cpu_us_per_identifier"] = round(
            (cpu_after - cpu_before) / count * 1e6, 1
        )
        results[f"{name}_keys"] = await client.dbsize()
    shards = shards_for(count / BUCKET_SECONDS, BUCKET_SECONDS)
    results["bucketed_fields_per_hash"] = round(count / GROUPS / shards, 1)
    await client.aclose()
    return results


def sizing(bytes_per_identifier: float, bucketed: bool) -> dict[str, dict[str, str]]:
    """GiB for each rate and window."""
    table: dict[str, dict[str, str]] = {}
    for rate in RATES:
        row = {}
        for label, seconds in KEPT.items():
            kept = seconds * 17 / 16 if bucketed else seconds
            row[label] = f"{rate * kept * bytes_per_identifier / 2**30:,.1f} GiB"
        table[f"{rate:,} events/s"] = row
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory)).start()
        try:
            results = asyncio.run(measure(server.url, args.count))
        finally:
            server.close()
    for name in ("key_per_identifier", "bucketed_hashes"):
        bucketed = name == "bucketed_hashes"
        results[f"{name}_sizing"] = sizing(results[f"{name}_bytes_per_identifier"], bucketed)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

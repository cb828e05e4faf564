"""The HTTP client under the stripe SDK, compared: CPU per call of the SDK's AIOHTTPClient,
its HTTPXClient and the service's own pooled client (consumer/stripe/http_pool.py),
each making the same ``raw_request_async`` POST (as the gateway does) against the project's
Stripe stand-in answering at once, in its own process.

    .venv/bin/python -m bench.transports [--calls 5000] [--concurrency 64]

Measures this process's CPU time (user + system) per call after a warm-up, under uvloop as
the service runs. Imports stripe directly on purpose: this is a yardstick, not the service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import stripe
import uvloop

from consumer.stripe.gateway import PooledHTTPClient
from consumer.stripe.http_pool import HttpPool
from tests.support.stack import StandIn, standin_request


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.asynccontextmanager
async def aiohttp_client(connections: int) -> AsyncIterator[stripe.HTTPClient]:
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    try:
        yield stripe.AIOHTTPClient(session=session, timeout=aiohttp.ClientTimeout(total=30))
    finally:
        await session.close()


@contextlib.asynccontextmanager
async def httpx_client(connections: int) -> AsyncIterator[stripe.HTTPClient]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    client = stripe.HTTPXClient(timeout=30, allow_sync_methods=False)
    await client._client_async.aclose()  # the SDK's default pool (10 keep-alive): ours instead
    client._client_async = httpx.AsyncClient(timeout=30, limits=limits)
    try:
        yield client
    finally:
        await client.close_async()  # type: ignore[no-untyped-call]


@contextlib.asynccontextmanager
async def pooled_client(connections: int) -> AsyncIterator[stripe.HTTPClient]:
    pool = HttpPool(
        max_connections=connections, timeout_seconds=30, ssl_context=ssl.create_default_context()
    )
    try:
        yield PooledHTTPClient(pool)
    finally:
        await pool.close()


CLIENTS: dict[str, Callable[[int], contextlib.AbstractAsyncContextManager[stripe.HTTPClient]]]
CLIENTS = {"aiohttp": aiohttp_client, "httpx": httpx_client, "pooled": pooled_client}


async def calls(client: stripe.StripeClient, count: int, concurrency: int, tag: str) -> None:
    numbers = iter(range(count))

    async def worker() -> None:
        for i in numbers:
            response = await client.raw_request_async(
                "post", "/v1/charges", amount=4200, currency="usd", source="tok_visa",
                idempotency_key=f"{tag}-{i}",
            )  # fmt: skip
            assert response.code == 200, response.code

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(name: str, api: str, count: int, concurrency: int) -> dict[str, Any]:
    async with CLIENTS[name](concurrency) as http:
        client = stripe.StripeClient(
            "sk_test_123", base_addresses={"api": api}, max_network_retries=0, http_client=http
        )
        run = f"{name}-{time.time_ns()}"
        await calls(client, min(1000, count), concurrency, f"warm-{run}")
        started, wall = cpu_seconds(), time.perf_counter()
        await calls(client, count, concurrency, run)
        spent, took = cpu_seconds() - started, time.perf_counter() - wall
    return {
        "client": name,
        "calls": count,
        "cpu_us_per_call": round(spent / count * 1e6, 1),
        "wall_calls_per_s": round(count / took, 1),
    }


async def main_async(names: list[str], count: int, concurrency: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        standin = StandIn(Path(work) / "standin.log")
        try:
            await standin_request(standin.url, "POST", "/_standin/config", {"latency_ms": 0})
            for _ in range(rounds):  # interleaved, so a noisy minute hurts them all alike
                for name in names:
                    print(await measure(name, standin.url, count, concurrency), flush=True)
        finally:
            standin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = args.clients.split(",")
    uvloop.run(main_async(names, args.calls, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()

"""The stand-in as a process: listen on 127.0.0.1 (a free port by default), print
``Listening on http://127.0.0.1:PORT`` (what the tests and the bench wait for), serve until
killed."""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from .app import StripeStandIn

try:
    import uvloop
except ImportError:  # Windows
    uvloop = None  # type: ignore[assignment]


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(StripeStandIn().app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=2048)
    await site.start()
    sockets = getattr(site._server, "sockets", None)
    bound = sockets[0].getsockname()[1] if sockets else port
    print(f"Listening on http://{host}:{bound}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="A small stateful stand-in for the parts of Stripe that stripe-mock "
        "cannot play."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    # uvloop where installed, as the service: Stripe spends none of the service's CPU, so
    # the stand-in should spend as little of the benchmark machine's as it can.
    run = asyncio.run if uvloop is None else uvloop.run
    run(serve(args.host, args.port))

"""The HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` (liveness), ``/readyz``
(readiness), served by aiohttp on ``CONSUMER_HTTP_HOST``:``CONSUMER_HTTP_PORT``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from consumer.observability.health import Probe


def _http_app(registry: CollectorRegistry, probe: Probe) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(_: web.Request) -> web.Response:
        ok, why = probe.alive()
        return web.json_response({"status": why}, status=200 if ok else 503)

    async def readyz(_: web.Request) -> web.Response:
        ok, why = probe.ready()
        return web.json_response({"status": why}, status=200 if ok else 503)

    app = web.Application()
    app.add_routes(
        [web.get("/metrics", metrics), web.get("/healthz", healthz), web.get("/readyz", readyz)]
    )
    return app


@contextlib.asynccontextmanager
async def http_server(
    host: str, port: int, registry: CollectorRegistry, probe: Probe
) -> AsyncIterator[int]:
    """Serve until exit; yields the port (the one the OS chose when ``port`` is 0)."""
    runner = web.AppRunner(_http_app(registry, probe), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    # aiohttp has no public way to learn a port the OS chose (CONSUMER_HTTP_PORT=0, in tests).
    sockets = getattr(site._server, "sockets", None)
    bound = sockets[0].getsockname()[1] if sockets else port
    try:
        yield int(bound)
    finally:
        await runner.cleanup()

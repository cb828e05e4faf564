"""The HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` (liveness), ``/readyz``
(readiness), served by aiohttp on ``CONSUMER_HTTP_HOST``:``CONSUMER_HTTP_PORT`` from the
first moment of start-up; and routes of other packages (the Stripe webhook) whose handlers
exist only once the consumer is built (:class:`LateRoutes`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from consumer.observability.health import Probe

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LateRoutes:
    """Routes served from the start whose handlers are handed over later (the webhook needs
    the producer, which needs Kafka). Until then each answers 503 "starting", which its
    caller retries (Stripe redelivers an event until it gets a 2xx)."""

    def __init__(self, routes: Sequence[tuple[str, str]]) -> None:
        self._paths = list(routes)  # (method, path)
        self._handlers: dict[tuple[str, str], Handler] = {}

    def hand_over(self, routes: Sequence[web.RouteDef]) -> None:
        for route in routes:
            if (route.method, route.path) not in self._paths:
                raise ValueError(f"{route.method} {route.path} was not served from the start")
            self._handlers[(route.method, route.path)] = route.handler

    def definitions(self) -> list[web.RouteDef]:
        def delegate(method: str, path: str) -> Handler:
            async def handle(request: web.Request) -> web.StreamResponse:
                handler = self._handlers.get((method, path))
                if handler is None:
                    return web.json_response({"error": "starting, try again"}, status=503)
                return await handler(request)

            return handle

        return [web.route(method, path, delegate(method, path)) for method, path in self._paths]


def _http_app(
    registry: CollectorRegistry, probe: Probe, routes: Sequence[web.RouteDef]
) -> web.Application:
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
        [
            web.get("/metrics", metrics),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            *routes,
        ]
    )
    return app


@contextlib.asynccontextmanager
async def http_server(
    host: str,
    port: int,
    registry: CollectorRegistry,
    probe: Probe,
    routes: Sequence[web.RouteDef] = (),
) -> AsyncIterator[int]:
    """Serve until exit; yields the port (the one the OS chose when ``port`` is 0). ``routes``
    adds endpoints of other packages (the Stripe webhook, through :class:`LateRoutes`)."""
    runner = web.AppRunner(_http_app(registry, probe, routes), access_log=None)
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

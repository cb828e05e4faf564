"""A small stateful stand-in for the parts of Stripe that stripe-mock cannot play.

stripe-mock (Stripe's own mock) checks requests against Stripe's API spec, and the tests use
it for that. It is stateless, so it cannot show what this stand-in shows: idempotency as
Stripe does it (idempotency.py), customers deleted once and declines (resources.py), meter
events, sessions and the stream (meters.py), credentials as Stripe answers them
(access.py), latency, injected faults and a rate limit (faults.py), and counters of it all
(stats.py).

This module is the HTTP app: the routes, the way every request takes through those layers
(counted; read whole; delayed; refused for its credentials; rate limited; failed before or
after its effect; deduplicated by its idempotency key), and the control plane (JSON):
``POST /_standin/config`` (see :class:`config.Config`), ``GET /_standin/stats``,
``POST /_standin/reset``, ``GET /_standin/billing`` (meter verdicts and thin events),
``POST /_standin/flush_errors`` (report the queued meter errors now).
"""

from __future__ import annotations

import time

from aiohttp import web

from . import access, faults
from .billing import Billing
from .config import Config, Controls
from .events import ThinEvents
from .idempotency import IdempotencyLayer
from .meters import STREAM_PATH, Meters
from .resources import Resources
from .wire import Handler, api_key, path_pattern


class StripeStandIn:
    def __init__(self) -> None:
        self.controls = Controls()
        self.idempotency = IdempotencyLayer(self.controls)
        self.resources = Resources()
        self.thin_events = ThinEvents(self.controls)
        self.billing = Billing(self.controls, self.resources.customers, self.thin_events)
        self.meters = Meters(self.controls, self.billing)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        app.add_routes(
            [
                web.post("/_standin/config", self._set_config),
                web.get("/_standin/stats", self._get_stats),
                web.post("/_standin/reset", self._reset),
                *self.resources.routes(),
                *self.meters.routes(),
                *self.billing.routes(),
                *self.thin_events.routes(),
                web.get("/_standin/billing", self._get_billing),
                web.post("/_standin/flush_errors", self._flush_errors),
            ]
        )
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_standin/"):
            return await handler(request)
        stats = self.controls.stats
        stats.calls += 1
        stats.calls_by_path[path_pattern(request.path)] += 1
        stats.calls_per_second[int(time.time())] += 1
        stats.in_flight += 1
        stats.peak_concurrency = max(stats.peak_concurrency, stats.in_flight)
        stats.recent.append(
            {
                "method": request.method,
                "path": request.path,
                "idempotency_key": request.headers.get("Idempotency-Key"),
                "stripe_account": request.headers.get("Stripe-Account"),
                "stripe_version": request.headers.get("Stripe-Version"),
            }
        )
        try:
            response = await self._serve(request, handler)
        finally:
            stats.in_flight -= 1
        stats.status_counts[response.status] += 1
        return response

    async def _serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        config = self.controls.config
        # Stripe has the whole request before it works on it: a client that stops waiting (a
        # timeout) does not stop an operation it already sent, so read the body first.
        await request.read()
        await faults.delay(config)
        key = api_key(request)
        refused = access.refusal(request, key, config, key_required=request.path != STREAM_PATH)
        if refused is None:
            refused = faults.rate_limited(self.controls, config)
        if refused is not None:
            return refused
        fault = faults.take(self.controls.config, request.path)
        if fault is not None and not fault.after_effect:
            return await faults.inject(request, fault, self.controls)
        if request.method == "POST" and request.path.startswith("/v1/"):
            response = await self.idempotency.handle(request, key or "", handler)
        else:
            response = await handler(request)
        return response if fault is None else await faults.inject(request, fault, self.controls)

    # -- control plane --------------------------------------------------------------------

    async def _set_config(self, request: web.Request) -> web.Response:
        self.controls.config = Config.from_json(await request.json())
        return web.json_response({"ok": True})

    async def _get_stats(self, request: web.Request) -> web.Response:
        summary = self.controls.stats.summary(full=request.query.get("full") == "1")
        return web.json_response(summary)

    async def _reset(self, _: web.Request) -> web.Response:
        self.controls.reset()
        self.idempotency.reset()
        self.resources.reset()
        self.meters.reset()
        self.billing.reset()
        self.thin_events.reset()
        return web.json_response({"ok": True})

    async def _get_billing(self, _: web.Request) -> web.Response:
        return web.json_response(self.billing.summary() | self.thin_events.summary())

    async def _flush_errors(self, _: web.Request) -> web.Response:
        self.thin_events.flush()
        return web.json_response({"ok": True})

"""A small stateful stand-in for the parts of Stripe that stripe-mock cannot play.

stripe-mock (Stripe's own mock) checks requests against Stripe's API spec, and the tests use
it for that. It is stateless, so it cannot show what this stand-in shows:

- idempotency as Stripe does it: the first response for a key is stored and replayed for the
  same parameters, a different body gets 400 `idempotency_error`, a concurrent request with
  the same key gets 409 `idempotency_key_in_use`; *executions per key* count side effects;
  a key is forgotten 24 hours after its first use (Stripe prunes keys at least 24 hours old,
  and a reused pruned key is a new request): ``clock_offset_seconds`` moves the stand-in's
  clock forward to show what happens past that window;
- customers it created can be deleted once: deleting one again (or an id it never made) gets
  404 `resource_missing`, as Stripe answers (DELETE carries no idempotency key);
- declines: source `tok_chargeDeclined` (or payment method `pm_card_chargeDeclined`) gets a
  402 `card_declined`;
- latency, injected 429/5xx/timeouts/connection resets (counted, or a percentage of calls),
  an optional rate limit;
- credentials as Stripe answers them: a revoked platform key gets 401 on every call (with or
  without `Stripe-Account`: authentication comes first); a connected account that revoked the
  platform's access (or never existed) gets, for requests naming it in `Stripe-Account`, 403
  `account_invalid` (Stripe's answer since API version 2016-10-19, "insufficient permissions
  now throw a 403"; earlier versions answered 401, which ``revoked_accounts`` can also play).
  Stripe's error object has only four types, so both bodies say `invalid_request_error`;
  only the HTTP status tells them apart (as the SDKs do);
- meter events: v1 rejects a repeated identifier as Stripe does; the v2 session and stream
  endpoints (token expiry included); deliveries counted per identifier;
- counters: calls, calls per second, peak concurrency.

Control plane (JSON): ``POST /_standin/config`` (see :class:`Config`), ``GET /_standin/stats``,
``POST /_standin/reset``. Run: ``python deploy/local/stripe_standin --port 0`` prints
``Listening on http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .config import Config, Controls, Fault
from .meters import Meters
from .resources import Resources
from .wire import (
    Handler,
    api_key,
    error,
    form,
    path_pattern,
    request_id,
)

try:
    import uvloop
except ImportError:  # Windows
    uvloop = None  # type: ignore[assignment]


@dataclass
class _Stored:
    fingerprint: str
    status: int
    body: dict[str, Any]
    created: float  # the stand-in's clock when the key was first used


IDEMPOTENCY_KEY_TTL_SECONDS = 24 * 3600.0


class StripeStandIn:
    def __init__(self) -> None:
        self.controls = Controls()
        self.resources = Resources()
        self.meters = Meters(self.controls)
        self._idempotency: dict[tuple[str, str], _Stored] = {}
        self._in_progress: set[tuple[str, str]] = set()

    # -- framework ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        app.add_routes(
            [
                web.post("/_standin/config", self._set_config),
                web.get("/_standin/stats", self._get_stats),
                web.post("/_standin/reset", self._reset),
                *self.resources.routes(),
                *self.meters.routes(),
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
        if config.latency_ms or config.jitter_ms:
            await asyncio.sleep(
                max(0.0, config.latency_ms + random.uniform(-1, 1) * config.jitter_ms) / 1000
            )
        key = api_key(request)
        is_stream = request.path == "/v2/billing/meter_event_stream"
        if not is_stream and (key is None or not re.match(r"^(sk|rk)_(test|live)_\w+$", key)):
            return error(401, "invalid_request_error", f"Invalid API Key provided: {key}", None)
        if key in config.revoked_keys:
            # Real Stripe masks most of the key; echoing it whole tests our own redaction.
            return error(401, "invalid_request_error", f"Invalid API Key provided: {key}", None)
        account = request.headers.get("Stripe-Account")
        if account is not None and account in config.revoked_accounts:
            return _no_access(config.revoked_accounts[account], key or "", account)
        if config.rate_limit_per_second and (
            self.controls.stats.calls_per_second[int(time.time())] > config.rate_limit_per_second
        ):
            self.controls.stats.faults_injected += 1
            return error(429, "invalid_request_error", "Too many requests", "rate_limit")
        fault = self._take_fault(request.path)
        if fault is not None and not fault.after_effect:
            return await self._inject(request, fault)
        if request.method == "POST" and not is_stream and request.path.startswith("/v1/"):
            response = await self._idempotent(request, key or "", handler)
        else:
            response = await handler(request)
        return response if fault is None else await self._inject(request, fault)

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.controls.config.faults:
            if fault.times != 0 and path.startswith(fault.path_prefix):
                if fault.times > 0:
                    fault.times -= 1
                return fault
        if (
            self.controls.config.fault_probability
            and random.random() < self.controls.config.fault_probability
        ):
            return Fault(status=500)
        draw = random.uniform(0, 100)
        for chance in self.controls.config.random_faults:
            if path.startswith(chance.path_prefix):
                if draw < chance.percent:
                    return Fault(status=chance.status)
                draw -= chance.percent
        return None

    async def _inject(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        self.controls.stats.faults_injected += 1
        if fault.status == "timeout":
            await asyncio.sleep(self.controls.config.hang_seconds)
            return error(504, "api_error", "timed out", None)
        if fault.status == "reset":
            if request.transport is not None:
                request.transport.abort()  # the client sees the connection drop mid-request
            return web.Response(status=500)
        status = int(fault.status)
        kind = "invalid_request_error" if status in (401, 403, 429) else "api_error"
        code = fault.code or ("rate_limit" if status == 429 else None)
        response = error(status, kind, f"Injected {status}", code)
        if fault.should_retry is not None:
            response.headers["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
        return response

    async def _idempotent(
        self, request: web.Request, api_key: str, handler: Handler
    ) -> web.StreamResponse:
        """Stripe's idempotency layer: replay, conflict, or execute (and count) once."""
        key = request.headers.get("Idempotency-Key")
        if key is None:
            self.controls.stats.executions["<no idempotency key>"] += 1
            return await handler(request)
        slot = (api_key, key)
        fingerprint = f"{request.method} {request.path} {await request.text()}"
        stored = self._idempotency.get(slot)
        if (
            stored is not None
            and self.controls.now() - stored.created >= IDEMPOTENCY_KEY_TTL_SECONDS
        ):
            del self._idempotency[slot]  # pruned: the key is new again
            stored = None
        response: web.StreamResponse
        if stored is not None:
            if stored.fingerprint != fingerprint:
                return error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                    None,
                )
            self.controls.stats.replays += 1
            response = web.json_response(stored.body, status=stored.status)
            response.headers["Idempotent-Replayed"] = "true"
            response.headers["Request-Id"] = request_id()
            return response
        if slot in self._in_progress:
            return error(
                409,
                "invalid_request_error",
                "There is currently another in-progress request using this Stripe token",
                "idempotency_key_in_use",
            )
        self._in_progress.add(slot)
        try:
            response = await handler(request)
        finally:
            self._in_progress.discard(slot)
        self.controls.stats.executions[key] += 1
        executed = self.controls.stats.executed_requests.setdefault(
            key,
            {
                "operation": f"{request.method} {path_pattern(request.path)}",
                "params": form(dict(urllib.parse.parse_qsl(await request.text()))),
                "executions": 0,
            },
        )
        executed["executions"] += 1
        if (
            isinstance(response, web.Response)
            and response.status < 500
            and response.body is not None
        ):
            body = json.loads(bytes(response.body))  # type: ignore[arg-type]
            self._idempotency[slot] = _Stored(
                fingerprint, response.status, body, self.controls.now()
            )
        return response

    # -- control plane --------------------------------------------------------------------

    async def _set_config(self, request: web.Request) -> web.Response:
        self.controls.config = Config.from_json(await request.json())
        return web.json_response({"ok": True})

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.controls.stats.summary(full=request.query.get("full") == "1"))

    async def _reset(self, _: web.Request) -> web.Response:
        self.controls.reset()
        self._idempotency = {}
        self._in_progress = set()
        self.resources.reset()
        self.meters.reset()
        return web.json_response({"ok": True})


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    # uvloop where installed, as the service: Stripe spends none of the service's CPU, so
    # the stand-in should spend as little of the benchmark machine's as it can.
    run = asyncio.run if uvloop is None else uvloop.run
    run(serve(args.host, args.port))


def _no_access(status: int, key: str, account: str) -> web.Response:
    """Stripe's answer for a Stripe-Account the key cannot act for (key masked as Stripe does)."""
    masked = f"{key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}"
    return error(
        status,
        "invalid_request_error",
        f"The provided key '{masked}' does not have access to account '{account}' (or that "
        "account does not exist). Application access may have been revoked.",
        "account_invalid",
    )

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
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .config import Config, Fault
from .stats import Stats
from .wire import (
    Handler,
    api_key,
    decline,
    error,
    form,
    new_id,
    ok,
    path_pattern,
    request_id,
    rfc3339,
    v2_error,
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
        self.config = Config()
        self.stats = Stats()
        self._idempotency: dict[tuple[str, str], _Stored] = {}
        self._in_progress: set[tuple[str, str]] = set()
        self._sessions: dict[str, float] = {}  # token -> expiry (time.time)
        self._customers: set[str] = set()  # created and not deleted

    def now(self) -> float:
        """The stand-in's clock: the wall clock, moved by ``clock_offset_seconds``."""
        return time.time() + self.config.clock_offset_seconds

    # -- framework ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        app.add_routes(
            [
                web.post("/_standin/config", self._set_config),
                web.get("/_standin/stats", self._get_stats),
                web.post("/_standin/reset", self._reset),
                web.get("/v1/balance", self._balance),
                web.get("/v1/customers", self._list("customer")),
                web.post("/v1/customers", self._create_customer),
                web.get("/v1/customers/{id}", self._retrieve("customer")),
                web.post("/v1/customers/{id}", self._update("customer")),
                web.delete("/v1/customers/{id}", self._delete_customer),
                web.get("/v1/coupons", self._list("coupon")),
                web.post("/v1/coupons", self._create("coupon", None)),
                web.post("/v1/payment_intents", self._create("payment_intent", "pi")),
                web.get("/v1/payment_intents/{id}", self._retrieve("payment_intent")),
                web.post("/v1/payment_intents/{id}/cancel", self._cancel_payment_intent),
                web.get("/v1/charges", self._list("charge")),
                web.post("/v1/charges", self._create_charge),
                web.get("/v1/charges/{id}", self._retrieve("charge")),
                web.post("/v1/charges/{id}", self._update("charge")),
                web.post("/v1/refunds", self._create("refund", "re")),
                web.get("/v1/refunds/{id}", self._retrieve("refund")),
                web.post("/v1/payment_methods/{id}/attach", self._attach),
                web.get("/v1/payment_methods/{id}", self._retrieve("payment_method")),
                web.post("/v1/payment_methods/{id}/detach", self._detach),
                web.post("/v1/billing/meter_events", self._meter_event_v1),
                web.post("/v2/billing/meter_event_session", self._meter_session),
                web.post("/v2/billing/meter_event_stream", self._meter_stream),
            ]
        )
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_standin/"):
            return await handler(request)
        stats = self.stats
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
        config = self.config
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
            self.stats.calls_per_second[int(time.time())] > config.rate_limit_per_second
        ):
            self.stats.faults_injected += 1
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
        for fault in self.config.faults:
            if fault.times != 0 and path.startswith(fault.path_prefix):
                if fault.times > 0:
                    fault.times -= 1
                return fault
        if self.config.fault_probability and random.random() < self.config.fault_probability:
            return Fault(status=500)
        draw = random.uniform(0, 100)
        for chance in self.config.random_faults:
            if path.startswith(chance.path_prefix):
                if draw < chance.percent:
                    return Fault(status=chance.status)
                draw -= chance.percent
        return None

    async def _inject(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        self.stats.faults_injected += 1
        if fault.status == "timeout":
            await asyncio.sleep(self.config.hang_seconds)
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
            self.stats.executions["<no idempotency key>"] += 1
            return await handler(request)
        slot = (api_key, key)
        fingerprint = f"{request.method} {request.path} {await request.text()}"
        stored = self._idempotency.get(slot)
        if stored is not None and self.now() - stored.created >= IDEMPOTENCY_KEY_TTL_SECONDS:
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
            self.stats.replays += 1
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
        self.stats.executions[key] += 1
        executed = self.stats.executed_requests.setdefault(
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
            self._idempotency[slot] = _Stored(fingerprint, response.status, body, self.now())
        return response

    # -- control plane --------------------------------------------------------------------

    async def _set_config(self, request: web.Request) -> web.Response:
        self.config = Config.from_json(await request.json())
        return web.json_response({"ok": True})

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.summary(full=request.query.get("full") == "1"))

    async def _reset(self, _: web.Request) -> web.Response:
        self.__init__()  # type: ignore[misc]
        return web.json_response({"ok": True})

    # -- resources ------------------------------------------------------------------------

    async def _balance(self, _: web.Request) -> web.Response:
        return ok(
            {
                "object": "balance",
                "livemode": False,
                "available": [{"amount": 0, "currency": "usd"}],
                "pending": [{"amount": 0, "currency": "usd"}],
            }
        )

    def _list(self, object_name: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            limit = int(request.query.get("limit", "10"))
            prefix = {"customer": "cus", "coupon": "co", "charge": "ch"}[object_name]
            data = [{"id": new_id(prefix), "object": object_name} for _ in range(min(limit, 3))]
            return ok({"object": "list", "data": data, "has_more": False, "url": request.path})

        return handler

    def _create(self, object_name: str, prefix: str | None) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            params = form(await request.post())
            object_id = params.pop("id", None) if prefix is None else new_id(prefix)
            return ok({"id": object_id, "object": object_name, "livemode": False, **params})

        return handler

    def _retrieve(self, object_name: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return ok({"id": request.match_info["id"], "object": object_name, "livemode": False})

        return handler

    def _update(self, object_name: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            params = form(await request.post())
            return ok({"id": request.match_info["id"], "object": object_name, **params})

        return handler

    async def _create_customer(self, request: web.Request) -> web.Response:
        params = form(await request.post())
        customer_id = new_id("cus")
        self._customers.add(customer_id)
        return ok({"id": customer_id, "object": "customer", "livemode": False, **params})

    async def _delete_customer(self, request: web.Request) -> web.Response:
        customer_id = request.match_info["id"]
        if customer_id not in self._customers:
            return error(
                404,
                "invalid_request_error",
                f"No such customer: '{customer_id}'",
                "resource_missing",
                param="id",
            )
        self._customers.discard(customer_id)
        return ok({"id": customer_id, "object": "customer", "deleted": True})

    async def _create_charge(self, request: web.Request) -> web.Response:
        params = form(await request.post())
        if params.get("source") == "tok_chargeDeclined":
            return decline(new_id("ch"))
        return ok(
            {"id": new_id("ch"), "object": "charge", "status": "succeeded", "paid": True, **params}
        )

    async def _cancel_payment_intent(self, request: web.Request) -> web.Response:
        params = form(await request.post())
        return ok(
            {
                "id": request.match_info["id"],
                "object": "payment_intent",
                "status": "canceled",
                **params,
            }
        )

    async def _attach(self, request: web.Request) -> web.Response:
        params = form(await request.post())
        if request.match_info["id"] == "pm_card_chargeDeclined":
            return decline(None)
        return ok(
            {
                "id": request.match_info["id"],
                "object": "payment_method",
                "customer": params.get("customer"),
            }
        )

    async def _detach(self, request: web.Request) -> web.Response:
        return ok({"id": request.match_info["id"], "object": "payment_method", "customer": None})

    async def _meter_event_v1(self, request: web.Request) -> web.Response:
        params = form(await request.post())
        identifier = str(params.get("identifier") or secrets.token_hex(8))
        if identifier in self.stats.meter_deliveries:
            response = error(
                400,
                "invalid_request_error",
                f"An event already exists with identifier {identifier}.",
                None,
            )
            response.headers["Stripe-Should-Retry"] = "false"
            return response
        self.stats.meter_deliveries[identifier] += 1
        return ok(
            {"object": "billing.meter_event", "livemode": False, **params, "identifier": identifier}
        )

    async def _meter_session(self, _: web.Request) -> web.Response:
        token = "mes_" + secrets.token_hex(12)
        expires = time.time() + self.config.session_ttl_seconds
        self._sessions[token] = expires
        self.stats.meter_sessions += 1
        return ok(
            {
                "id": "mes_session_" + secrets.token_hex(6),
                "object": "v2.billing.meter_event_session",
                "authentication_token": token,
                "created": rfc3339(time.time()),
                "expires_at": rfc3339(expires),
                "livemode": False,
            }
        )

    async def _meter_stream(self, request: web.Request) -> web.Response:
        token = api_key(request) or ""
        expiry = self._sessions.get(token)
        if expiry is None:
            return v2_error(401, "invalid_request_error", "Invalid authentication token")
        if expiry <= time.time():
            return v2_error(401, "temporary_session_expired", "The meter event session has expired")
        if request.content_type != "application/json":  # v2 takes JSON bodies only
            return v2_error(400, "invalid_request_error", "Expected a JSON request body")
        body = await request.json()
        events = body.get("events", [])
        if not isinstance(events, list) or not 1 <= len(events) <= 100:
            return v2_error(400, "invalid_request_error", "Between 1 and 100 events per request")
        self.stats.meter_stream_requests += 1
        for event in events:
            self.stats.meter_deliveries[str(event.get("identifier"))] += 1
        self.stats.recent_stream_events.extend(events)
        return web.json_response({}, status=200)


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

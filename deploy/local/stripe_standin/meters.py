"""Usage-based billing: v1 meter events (a repeated identifier is rejected, as Stripe
does), the v2 meter event session (a token that expires) and stream (1 to 100 events per
request, JSON only); deliveries are counted per identifier. The place for more of
Stripe's billing: meters, their verdicts and summaries are in billing.py and events.py."""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from .billing import Billing
from .config import Controls
from .wire import api_key, error, form, ok, rfc3339, v2_error

# Authenticated by a session's token, not by an API key.
STREAM_PATH = "/v2/billing/meter_event_stream"


class Meters:
    def __init__(self, controls: Controls, billing: Billing) -> None:
        self._controls = controls
        self._billing = billing
        self.reset()

    def reset(self) -> None:
        self._sessions: dict[str, float] = {}  # token -> expiry (time.time)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/billing/meter_events", self._meter_event_v1),
            web.post("/v2/billing/meter_event_session", self._session),
            web.post(STREAM_PATH, self._stream),
        ]

    async def _meter_event_v1(self, request: web.Request) -> web.Response:
        stats = self._controls.stats
        params = form(await request.post())
        identifier = str(params.get("identifier") or secrets.token_hex(8))
        if identifier in stats.meter_deliveries:
            response = error(
                400,
                "invalid_request_error",
                f"An event already exists with identifier {identifier}.",
                None,
            )
            response.headers["Stripe-Should-Retry"] = "false"
            return response
        stats.meter_deliveries[identifier] += 1
        self._billing.judge([{**params, "identifier": identifier}], _account(request))
        return ok(
            {"object": "billing.meter_event", "livemode": False, **params, "identifier": identifier}
        )

    async def _session(self, _: web.Request) -> web.Response:
        token = "mes_" + secrets.token_hex(12)
        expires = time.time() + self._controls.config.session_ttl_seconds
        self._sessions[token] = expires
        self._controls.stats.meter_sessions += 1
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

    async def _stream(self, request: web.Request) -> web.Response:
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
        stats = self._controls.stats
        stats.meter_stream_requests += 1
        for event in events:
            stats.meter_deliveries[str(event.get("identifier"))] += 1
        stats.recent_stream_events.extend(events)
        self._billing.judge(events, _account(request))
        return web.json_response({}, status=200)


def _account(request: web.Request) -> str | None:
    return request.headers.get("Stripe-Context") or request.headers.get("Stripe-Account")

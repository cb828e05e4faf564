"""Routes served from the first moment of start-up whose handlers arrive later (the Stripe
webhook): 503 until handed over, then the real handler; a route not served from the start
cannot be handed over."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from consumer.observability.health import StartingProbe
from consumer.observability.http import LateRoutes, http_server

ROUTES = (("POST", "/stripe/webhook"), ("POST", "/stripe/webhook/{integration}"))


async def test_a_late_route_answers_503_until_handed_over_then_delegates() -> None:
    """Before: 503 (the caller retries); after: the handler's answer, path parameters kept."""
    late = LateRoutes(ROUTES)

    async def receive(request: web.Request) -> web.Response:
        return web.json_response({"integration": request.match_info.get("integration")})

    serving = http_server("127.0.0.1", 0, CollectorRegistry(), StartingProbe(), late.definitions())
    async with serving as port, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{port}"
        async with session.post(f"{base}/stripe/webhook/eu") as early:
            assert early.status == 503
        late.hand_over([web.post(path, receive) for _, path in ROUTES])
        async with session.post(f"{base}/stripe/webhook/eu") as named:
            assert (named.status, await named.json()) == (200, {"integration": "eu"})
        async with session.post(f"{base}/stripe/webhook") as plain:
            assert (plain.status, await plain.json()) == (200, {"integration": None})
        async with session.get(f"{base}/readyz") as ready:
            assert ready.status == 503  # the starting probe still answers beside them


def test_a_route_not_served_from_the_start_is_refused() -> None:
    """Handing over a path that was never registered would silently 404: refused at once."""

    async def receive(_: web.Request) -> web.Response:
        return web.Response()

    with pytest.raises(ValueError, match="/other"):
        LateRoutes(ROUTES).hand_over([web.post("/other", receive)])

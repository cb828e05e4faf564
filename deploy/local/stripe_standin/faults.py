"""Failures the control plane asks for: latency with jitter, a rate limit (429 beyond it),
faults by count (an HTTP status, a timeout, a connection reset; before or after the
request took effect) and faults by chance (a storm of 5xx and 429)."""

from __future__ import annotations

import asyncio
import random
import time

from aiohttp import web

from .config import Config, Controls, Fault
from .wire import error


async def delay(config: Config) -> None:
    if config.latency_ms or config.jitter_ms:
        await asyncio.sleep(
            max(0.0, config.latency_ms + random.uniform(-1, 1) * config.jitter_ms) / 1000
        )


def rate_limited(controls: Controls, config: Config) -> web.Response | None:
    """429 when this second already saw more calls than the limit allows."""
    if config.rate_limit_per_second and (
        controls.stats.calls_per_second[int(time.time())] > config.rate_limit_per_second
    ):
        controls.stats.faults_injected += 1
        return error(429, "invalid_request_error", "Too many requests", "rate_limit")
    return None


def take(config: Config, path: str) -> Fault | None:
    """The fault this request meets, if any: counted faults first, then chance."""
    for fault in config.faults:
        if fault.times != 0 and path.startswith(fault.path_prefix):
            if fault.times > 0:
                fault.times -= 1
            return fault
    if config.fault_probability and random.random() < config.fault_probability:
        return Fault(status=500)
    draw = random.uniform(0, 100)
    for chance in config.random_faults:
        if path.startswith(chance.path_prefix):
            if draw < chance.percent:
                return Fault(status=chance.status)
            draw -= chance.percent
    return None


async def inject(request: web.Request, fault: Fault, controls: Controls) -> web.StreamResponse:
    controls.stats.faults_injected += 1
    if fault.status == "timeout":
        await asyncio.sleep(controls.config.hang_seconds)
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

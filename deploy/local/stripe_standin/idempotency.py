"""Idempotency as Stripe does it: the first response for a key is stored and replayed for
the same parameters, a different body gets 400 ``idempotency_error``, a concurrent request
with the same key gets 409 ``idempotency_key_in_use``; executions per key count side
effects. A key is forgotten 24 hours after its first use (Stripe prunes keys at least 24
hours old, and a reused pruned key is a new request): ``clock_offset_seconds`` moves the
stand-in's clock forward to show what happens past that window."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .config import Controls
from .wire import Handler, error, form, path_pattern, request_id

IDEMPOTENCY_KEY_TTL_SECONDS = 24 * 3600.0


@dataclass
class _Stored:
    fingerprint: str
    status: int
    body: dict[str, Any]
    created: float  # the stand-in's clock when the key was first used


class IdempotencyLayer:
    """Stands before every v1 POST: replay, conflict, or execute (and count) once."""

    def __init__(self, controls: Controls) -> None:
        self._controls = controls
        self.reset()

    def reset(self) -> None:
        self._stored: dict[tuple[str, str], _Stored] = {}  # (API key, idempotency key)
        self._in_progress: set[tuple[str, str]] = set()

    async def handle(
        self, request: web.Request, api_key: str, handler: Handler
    ) -> web.StreamResponse:
        stats = self._controls.stats
        key = request.headers.get("Idempotency-Key")
        if key is None:
            stats.executions["<no idempotency key>"] += 1
            return await handler(request)
        slot = (api_key, key)
        fingerprint = f"{request.method} {request.path} {await request.text()}"
        stored = self._stored.get(slot)
        now = self._controls.now()
        if stored is not None and now - stored.created >= IDEMPOTENCY_KEY_TTL_SECONDS:
            del self._stored[slot]  # pruned: the key is new again
            stored = None
        if stored is not None:
            return _replay(stored, fingerprint, self._controls)
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
        await self._count(request, key)
        if (
            isinstance(response, web.Response)
            and response.status < 500
            and response.body is not None
        ):
            body = json.loads(bytes(response.body))  # type: ignore[arg-type]
            self._stored[slot] = _Stored(fingerprint, response.status, body, self._controls.now())
        return response

    async def _count(self, request: web.Request, key: str) -> None:
        stats = self._controls.stats
        stats.executions[key] += 1
        executed = stats.executed_requests.setdefault(
            key,
            {
                "operation": f"{request.method} {path_pattern(request.path)}",
                "params": form(dict(urllib.parse.parse_qsl(await request.text()))),
                "executions": 0,
            },
        )
        executed["executions"] += 1


def _replay(stored: _Stored, fingerprint: str, controls: Controls) -> web.Response:
    if stored.fingerprint != fingerprint:
        return error(
            400,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters "
            "they were first used with.",
            None,
        )
    controls.stats.replays += 1
    response = web.json_response(stored.body, status=stored.status)
    response.headers["Idempotent-Replayed"] = "true"
    response.headers["Request-Id"] = request_id()
    return response

"""Stripe's wire as the stand-in speaks it: object and request ids, JSON answers and error
bodies (v1, v2, card declines), the API key from ``Authorization``, form-encoded
parameters back to nested JSON, and request paths with their ids folded for counting."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_standin{next(_ids):010d}"


def request_id() -> str:
    return f"req_standin{next(_ids):010d}"


def api_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth.removeprefix("Bearer ").strip() or None if auth.startswith("Bearer ") else None


def ok(body: dict[str, Any]) -> web.Response:
    response = web.json_response(body)
    response.headers["Request-Id"] = request_id()
    return response


def error(
    status: int, kind: str, message: str, code: str | None, *, param: str | None = None
) -> web.Response:
    body: dict[str, Any] = {"type": kind, "message": message}
    if code:
        body["code"] = code
    if param:
        body["param"] = param
    response = web.json_response({"error": body}, status=status)
    response.headers["Request-Id"] = request_id()
    return response


def v2_error(status: int, kind: str, message: str) -> web.Response:
    return error(status, kind, message, None)


def decline(charge_id: str | None) -> web.Response:
    response = web.json_response(
        {
            "error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "generic_decline",
                "message": "Your card was declined.",
                "charge": charge_id,
            }
        },
        status=402,
    )
    response.headers["Request-Id"] = request_id()
    return response


def form(data: Any) -> dict[str, Any]:
    """Stripe's form encoding (`metadata[k]=v`, `payload[value]=3`) back to nested JSON."""
    result: dict[str, Any] = {}
    for raw_key, value in data.items():
        parts = re.findall(r"[^\[\]]+", raw_key)
        target = result
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _number(value)
    return result


def _number(value: str) -> Any:
    return int(value) if re.fullmatch(r"-?\d+", value) else value


def path_pattern(path: str) -> str:
    return re.sub(r"/(cus|pi|ch|re|pm|co)_[A-Za-z0-9_]+", r"/{\1_id}", path)


def rfc3339(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(moment))

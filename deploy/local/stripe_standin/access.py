"""Credentials as Stripe answers them. A malformed or revoked platform key gets 401 on every
call (with or without ``Stripe-Account``: authentication comes first); a connected account
that revoked the platform's access (or never existed) gets, for requests naming it in
``Stripe-Account``, 403 ``account_invalid`` (Stripe's answer since API version 2016-10-19,
"insufficient permissions now throw a 403"; earlier versions answered 401, which
``revoked_accounts`` can also play). Stripe's error object has only four types, so both
bodies say ``invalid_request_error``; only the HTTP status tells them apart (as the SDKs do)."""

from __future__ import annotations

import re

from aiohttp import web

from .config import Config
from .wire import error


def refusal(
    request: web.Request, key: str | None, config: Config, *, key_required: bool
) -> web.Response | None:
    """Stripe's answer to a request its credentials cannot make, or None to let it through.
    key_required is False where a session token, not an API key, authenticates."""
    if key_required and (key is None or not re.match(r"^(sk|rk)_(test|live)_\w+$", key)):
        return error(401, "invalid_request_error", f"Invalid API Key provided: {key}", None)
    if key in config.revoked_keys:
        # Real Stripe masks most of the key; echoing it whole tests our own redaction.
        return error(401, "invalid_request_error", f"Invalid API Key provided: {key}", None)
    account = request.headers.get("Stripe-Account")
    if account is not None and account in config.revoked_accounts:
        return _no_access(config.revoked_accounts[account], key or "", account)
    return None


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

"""The Stripe gateway: the only module that imports ``stripe``.

One async :class:`stripe.StripeClient` serves every credential: the key is chosen per call,
so all calls share one HTTP connection pool, sized by ``STRIPE_MAX_CONNECTIONS``. The SDK's
own retries are off (``max_network_retries=0``): the engine retries with the same
idempotency key, within its time budget, and counts attempts.

Calls go through the client's ``raw_request_async`` with the method and path from the
operation table: the same requestor as the typed service methods (authentication,
``Stripe-Version``, ``Idempotency-Key``, ``Stripe-Account``, form encoding, the SDK's typed
errors), without building a ``StripeObject`` tree that the service would throw away, since
it replies with Stripe's JSON as sent. Measured: about 12% more requests per second per core
(see the README's benchmark section).

Stripe's errors are translated in exactly one place, :func:`map_stripe_errors`, into
:class:`~consumer.contract.errors.StripeFailure`, which knows whether retrying can help.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Final

import aiohttp
import msgspec
import stripe

from consumer.contract.errors import StripeFailure
from consumer.contract.reply import ReplyError
from consumer.observability.redaction import Redactor
from consumer.settings import Settings, StripeCredential
from consumer.stripe.calls import StripeCall, StripeResponse

API_VERSION: Final = stripe.api_version

# Stripe codes that mean "try again shortly": contention on one object or one key.
_RETRYABLE_CODES: Final = frozenset({"lock_timeout", "idempotency_key_in_use", "rate_limit"})
_TYPE_BY_ERROR_CLASS: Final[Mapping[type[stripe.StripeError], str]] = {
    stripe.APIConnectionError: "api_connection_error",
    stripe.RateLimitError: "rate_limit_error",
    stripe.AuthenticationError: "authentication_error",
    stripe.PermissionError: "permission_error",
    stripe.IdempotencyError: "idempotency_error",
    stripe.CardError: "card_error",
    stripe.InvalidRequestError: "invalid_request_error",
    stripe.TemporarySessionExpiredError: "temporary_session_expired",
}


def _default_retryable(exc: stripe.StripeError, code: str | None) -> bool:
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    if isinstance(exc, stripe.TemporarySessionExpiredError):
        return True
    if code in _RETRYABLE_CODES:
        return True
    status = exc.http_status or 0
    return isinstance(exc, stripe.APIError) and (status >= 500 or status == 409)


def _error_type(exc: stripe.StripeError, error: Mapping[str, Any], category: str) -> str:
    """Stripe's error type, except where only the HTTP status says what happened.

    Stripe's error object has four types (`api_error`, `card_error`, `idempotency_error`,
    `invalid_request_error`): a 401 (no valid key) and a 403 (the key may not do this, or may
    not act for the `Stripe-Account` named) both arrive as `invalid_request_error`. The SDK
    tells them apart by status (``AuthenticationError``, ``PermissionError``), and so does the
    reply: `authentication_error`, `permission_error`, as the contract promises.
    """
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return category
    return str(error.get("type") or category)


def failure_from_stripe_error(exc: stripe.StripeError, redact: Redactor) -> StripeFailure:
    """Translate one SDK error into the service's terms (the only such translation)."""
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    code = error.get("code") or exc.code
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    retryable = _default_retryable(exc, code)
    should_retry = headers.get("stripe-should-retry")
    if should_retry in {"true", "false"}:
        retryable = should_retry == "true"
    category = _TYPE_BY_ERROR_CLASS.get(type(exc), "api_error")
    error_type = _error_type(exc, error, category)
    if isinstance(exc, stripe.APIConnectionError):
        # The SDK's text spans lines and says "let us know"; say what happened, in one line.
        cause = "timed out" if "TimeoutError" in str(exc.user_message) else "failed"
        message = f"The connection to Stripe {cause}"
    else:
        message = " ".join(str(error.get("message") or exc.user_message or "Stripe error").split())
    retry_after = headers.get("retry-after")
    return StripeFailure(
        ReplyError(
            type=error_type,
            code=code,
            decline_code=error.get("decline_code"),
            message=redact(message),
            param=error.get("param"),
            http_status=exc.http_status,
            request_id=exc.request_id,
            retryable=retryable,
        ),
        category=category,
        authentication=isinstance(exc, stripe.AuthenticationError),
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
    )


def _connection_failure(exc: BaseException) -> StripeFailure:
    kind = "timed out" if isinstance(exc, TimeoutError) else f"failed ({type(exc).__name__})"
    return StripeFailure(
        ReplyError(
            type="api_connection_error",
            message=f"The connection to Stripe {kind}",
            retryable=True,
        ),
        category="api_connection_error",
    )


@contextlib.contextmanager
def map_stripe_errors(redact: Redactor) -> Iterator[None]:
    """Raise StripeFailure for anything the SDK or its transport raises."""
    try:
        yield
    except stripe.StripeError as exc:
        raise failure_from_stripe_error(exc, redact) from None
    except (TimeoutError, aiohttp.ClientError) as exc:
        # The SDK's aiohttp transport reads the body outside its own error wrapping.
        raise _connection_failure(exc) from None


class SignatureRejected(Exception):
    """A webhook's ``Stripe-Signature`` is missing or wrong (``reason`` `signature`), or its
    timestamp is older than the tolerance (`stale`: a replay)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_signature(payload: bytes, header: str | None, secret: str, tolerance: int) -> None:
    """Check a webhook as Stripe signs it, with stripe-python's own verifier (the scheme of
    event destinations, thin events included: ``t=<unix>,v1=<HMAC-SHA256 of "t.body">``)."""
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        stale = "tolerance zone" in str(exc)
        raise SignatureRejected("stale" if stale else "signature") from None
    except UnicodeDecodeError:
        raise SignatureRejected("signature") from None


class StripeGateway:
    """Executes StripeCalls with the official async client. Use :func:`open_gateway`."""

    def __init__(self, client: stripe.StripeClient, redact: Redactor) -> None:
        self._client = client
        self._redact = redact

    async def call(
        self,
        call: StripeCall,
        *,
        credential: StripeCredential,
        stripe_account: str | None,
        idempotency_key: str | None,
        stripe_context: str | None = None,
    ) -> StripeResponse:
        """``stripe_context``: a v2 event's `context` (the account it happened in), sent as
        ``Stripe-Context`` to fetch it, as stripe-python's ``fetch_event`` does."""
        options: dict[str, Any] = {"api_key": credential.api_key.reveal()}
        if stripe_account:
            options["stripe_account"] = stripe_account
        if stripe_context:
            options["stripe_context"] = stripe_context
        if call.writes and idempotency_key:
            options["idempotency_key"] = idempotency_key
        with map_stripe_errors(self._redact):
            response = await self._client.raw_request_async(
                call.http_method.lower(), call.path, **call.params, **options
            )
        return StripeResponse(
            body=msgspec.Raw(response.body.encode("utf-8")),
            request_id=response.request_id,
            http_status=response.code,
        )

    async def send_meter_event_stream(self, *, token: str, events: list[dict[str, object]]) -> None:
        """Up to 100 events on the v2 stream (its own host), authorised by a session token."""
        with map_stripe_errors(self._redact):
            await self._client.v2.billing.meter_event_stream.create_async(
                params={"events": _JsonOnlyEvents(events)},  # type: ignore[typeddict-item]
                options={"api_key": token},
            )


class _JsonOnlyEvents(list[dict[str, object]]):
    """A v2 stream batch, which the SDK sends as JSON and need not also form-encode.

    The SDK's requestor form-encodes every request's parameters before it looks at the API
    version, and for a v2 request throws that encoding away (the body is ``json.dumps`` of the
    parameters). For a batch of 100 events that costs 2.2 ms, a third of the meter lane's CPU
    (profiled with py-spy under ``make bench``). Its form encoder passes a value with an ``id``
    attribute through as that id, so this list is not walked there; ``json.dumps`` encodes it
    as the list it is. Should the SDK change either step, the batch is still sent correctly,
    only slower; ``tests/contract`` pins the JSON body Stripe receives.
    """

    id = "events"  # what the discarded form encoding shows instead of walking the batch


@contextlib.asynccontextmanager
async def open_gateway(settings: Settings, redact: Redactor) -> AsyncIterator[StripeGateway]:
    """The gateway with its HTTP pool; closed on exit. Call inside the running event loop."""
    connector = aiohttp.TCPConnector(
        limit=settings.stripe_max_connections,
        limit_per_host=settings.stripe_max_connections,
        ttl_dns_cache=300,
    )
    # Stripe's API sets no cookies we need; skipping the jar saves work on every response.
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    http_client = stripe.AIOHTTPClient(
        session=session, timeout=aiohttp.ClientTimeout(total=settings.stripe_timeout_seconds)
    )
    client = stripe.StripeClient(
        settings.credentials["default"].api_key.reveal(),
        base_addresses={
            "api": settings.stripe_api_base,
            "meter_events": settings.stripe_meter_events_base,
        },
        max_network_retries=0,
        http_client=http_client,
    )
    try:
        yield StripeGateway(client, redact)
    finally:
        await session.close()
        # aiohttp recommends a short pause so SSL transports close before the loop ends.
        await asyncio.sleep(0)

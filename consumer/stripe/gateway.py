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
:class:`~consumer.contract.errors.StripeFailure`, which knows whether retrying can help. A
"connection error" that is no failure of the network (the HTTP client refused a header
value, say) is terminal there: retried, it would fail the same way for ever.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import importlib
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Final

import msgspec
import stripe

from consumer.contract.errors import StripeFailure
from consumer.contract.reply import ReplyError
from consumer.observability.redaction import Redactor
from consumer.settings import Settings, StripeCredential
from consumer.stripe.calls import StripeCall, StripeResponse
from consumer.stripe.http_pool import HttpPool

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


# What the HTTP pool (http_pool.py) raises when the network or Stripe's end fails: refused,
# reset, closed or cut short (ConnectionError, an OSError), TLS (ssl.SSLError, an OSError),
# an answer that is not HTTP (ConnectionError), no answer in time (TimeoutError).
_NETWORK_FAILURES: Final = (OSError, TimeoutError)


def _network_failure(exc: BaseException) -> bool:
    """The network or Stripe's end failed (refused, reset, timed out, cut short): a retry can
    succeed. Anything else raised while sending (an invalid header value, a body that cannot
    be encoded) fails the same way every time."""
    return isinstance(exc, _NETWORK_FAILURES)


def _local_failure(exc: BaseException) -> StripeFailure:
    """The request could not be sent at all, for a reason a retry cannot change: terminal.
    (Only the exception's type is said: its text may quote the header or body it refused.)"""
    return StripeFailure(
        ReplyError(
            type="api_connection_error",
            message=f"The request could not be sent to Stripe ({type(exc).__name__}); "
            "retrying cannot help",
            retryable=False,
        ),
        category="api_connection_error",
    )


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
    raised = exc.__cause__  # what the HTTP client raised, for a connection error
    # The SDK reports whatever its HTTP client raised as a connection error; only a failure
    # of the network is one a retry can mend.
    connection = isinstance(exc, stripe.APIConnectionError)
    if connection and raised is not None and not _network_failure(raised):
        return _local_failure(raised)
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
    if not _network_failure(exc):
        return _local_failure(exc)
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
    except (TimeoutError, OSError) as exc:  # never expected: the transport wraps its own
        raise _connection_failure(exc) from None
    except (ValueError, TypeError) as exc:  # the SDK could not build the request (UnicodeError too)
        raise _local_failure(exc) from None


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


class PooledHTTPClient(stripe.HTTPClient):
    """The SDK's async HTTP client on the service's own connection pool
    (``consumer/stripe/http_pool.py``): the SDK builds the request and reads the response;
    the pool moves the bytes. A transport failure is the SDK's ``APIConnectionError``, as
    from the SDK's own clients."""

    name = "httptools"

    def __init__(self, pool: HttpPool) -> None:
        super().__init__()
        self._pool = pool

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        body = post_data.encode() if isinstance(post_data, str) else post_data
        try:
            return await self._pool.request(method, url, headers, body)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]
                f"Unexpected error communicating with Stripe. (Network error: A "
                f"{type(exc).__name__} was raised)",
                should_retry=True,
            ) from exc

    async def request_stream_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[AsyncIterator[bytes], int, Mapping[str, str]]:
        """The SDK streams only file downloads, which the service never asks for: the whole
        body, as one chunk."""
        body, status, response_headers = await self.request_async(method, url, headers, post_data)

        async def chunks() -> AsyncIterator[bytes]:
            yield body

        return chunks(), status, response_headers

    async def close_async(self) -> None:
        await self._pool.close()

    def close(self) -> None:
        """The synchronous close the base class asks for: nothing to do outside the loop."""

    def sleep_async(self, secs: float) -> Any:
        return asyncio.sleep(secs)


def lighten_the_sdk_per_call() -> None:
    """Drop work the SDK does on every call that the service never uses (measured: about a
    sixth of the CPU per request; README, Performance). Idempotent; each step is skipped if a
    later SDK no longer has what it changes, and none changes what Stripe receives except
    the telemetry header.

    - Telemetry off (``stripe.enable_telemetry``, the SDK's public switch): no
      ``X-Stripe-Client-Telemetry`` header with the previous call's latency, which cost a
      ``json.dumps`` and a metrics object per call. The service's own metrics keep latency.
    - The requestor's five log lines per call (``log_info``/``log_debug``) are formatted
      (``logfmt``, a regex per field) before the SDK checks whether anyone listens: they are
      now formatted only when the ``stripe`` logger or ``STRIPE_LOG``/``stripe.log`` would
      print them, as the SDK's own output would have.
    - The AI-agent marker of the User-Agent scans about twenty environment variables per
      call; the environment does not change under a running service, so once is enough.
    - Every response was parsed (``json.loads`` into OrderedDicts, 2.8 % of the CPU per
      request) into a ``data`` the service never reads on success: the body is now only
      checked to be JSON (msgspec, the same refusal: the SDK's "Invalid response body"
      APIError), and ``data`` parsed when read (error responses, typed objects).
    """
    stripe.enable_telemetry = False
    try:
        util = importlib.import_module("stripe._util")
        requestor_module = importlib.import_module("stripe._api_requestor")
    except ImportError:
        return
    for name, level in (("log_info", logging.INFO), ("log_debug", logging.DEBUG)):
        original = getattr(requestor_module, name, None)
        if callable(original) and not hasattr(original, "__wrapped__"):
            setattr(requestor_module, name, _formatted_only_when_heard(original, level, util))
    response = getattr(requestor_module, "StripeResponse", None)
    if isinstance(response, type) and response is stripe.StripeResponse:
        requestor_module.StripeResponse = _ParsedWhenRead  # type: ignore[attr-defined]
    requestor = getattr(requestor_module, "_APIRequestor", None)
    detect = getattr(requestor, "_detect_ai_agent", None)
    if callable(detect) and not hasattr(detect, "__wrapped__"):
        agent = detect(os.environ)

        def detected(environ: Mapping[str, str]) -> str:
            return str(agent)

        detected.__wrapped__ = detect  # type: ignore[attr-defined]
        requestor._detect_ai_agent = staticmethod(detected)  # type: ignore[union-attr]


class _ParsedWhenRead(stripe.StripeResponse):
    """The SDK's response, its body checked to be JSON at once and parsed only when read."""

    def __init__(self, body: str, code: int, headers: Mapping[str, str]) -> None:
        stripe.StripeResponseBase.__init__(self, code, headers)
        self.body = body
        msgspec.json.decode(body, type=msgspec.Raw)  # not JSON: raises, as json.loads did

    @functools.cached_property
    def data(self) -> object:  # type: ignore[override]
        return json.loads(self.body, object_pairs_hook=collections.OrderedDict)


def _formatted_only_when_heard(
    log: Callable[..., None], level: int, util: Any
) -> Callable[..., None]:
    def quiet_unless_heard(message: str, **params: Any) -> None:
        if util.logger.isEnabledFor(level) or util._console_log_level() is not None:
            log(message, **params)

    quiet_unless_heard.__wrapped__ = log  # type: ignore[attr-defined]
    return quiet_unless_heard


@contextlib.asynccontextmanager
async def open_gateway(settings: Settings, redact: Redactor) -> AsyncIterator[StripeGateway]:
    """The gateway with its HTTP pool; closed on exit. Call inside the running event loop."""
    lighten_the_sdk_per_call()
    pool = HttpPool(
        max_connections=settings.stripe_max_connections,
        timeout_seconds=settings.stripe_timeout_seconds,
        ssl_context=ssl.create_default_context(cafile=stripe.ca_bundle_path),
    )
    client = stripe.StripeClient(
        settings.credentials["default"].api_key.reveal(),
        base_addresses={
            "api": settings.stripe_api_base,
            "meter_events": settings.stripe_meter_events_base,
        },
        max_network_retries=0,
        http_client=PooledHTTPClient(pool),
    )
    try:
        yield StripeGateway(client, redact)
    finally:
        await pool.close()

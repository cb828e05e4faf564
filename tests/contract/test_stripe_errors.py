"""Stripe's errors, as real HTTP responses from the stand-in, map to the right reply error:
type, code, decline code, retryable or terminal, request id; secrets masked."""

from __future__ import annotations

import socket
from typing import Any

import msgspec
import pytest

from consumer.contract.errors import StripeFailure
from consumer.contract.requests import Request
from consumer.observability.redaction import Redactor
from consumer.operations import stripe_call
from consumer.settings import Secret, Settings, StripeCredential
from consumer.stripe.gateway import StripeGateway, open_gateway
from tests.contract.conftest import gateway_settings
from tests.support.stack import StandIn, standin_request

pytestmark = pytest.mark.contract

CHARGE = {"operation": "create_charge", "amount": 500, "currency": "usd", "source": "tok_visa"}


async def failure_of(
    pair: tuple[StripeGateway, Settings],
    raw: dict[str, Any],
    *,
    key: str = "k",
    credential: StripeCredential | None = None,
    stripe_account: str | None = None,
) -> StripeFailure:
    gateway, settings = pair
    with pytest.raises(StripeFailure) as caught:
        await gateway.call(
            stripe_call(msgspec.convert(raw, Request)),
            credential=credential or settings.credentials["default"],
            stripe_account=stripe_account,
            idempotency_key=key,
        )
    return caught.value


async def configure(standin: StandIn, **config: Any) -> None:
    await standin_request(standin.url, "POST", "/_standin/config", config)


async def test_decline_is_terminal_with_decline_code(
    standin: StandIn, standin_gateway: tuple[StripeGateway, Settings]
) -> None:
    """402 card_declined: terminal, with Stripe's code, decline code and request id."""
    await configure(standin)
    failure = await failure_of(
        standin_gateway, {**CHARGE, "source": "tok_chargeDeclined"}, key="decline-1"
    )
    detail = failure.detail
    assert (detail.type, detail.code, detail.decline_code, detail.http_status) == (
        "card_error",
        "card_declined",
        "generic_decline",
        402,
    )
    assert detail.retryable is False
    assert detail.request_id
    assert detail.request_id.startswith("req_")
    assert failure.category == "card_error"


@pytest.mark.parametrize(
    ("fault", "category", "code", "retryable"),
    [
        ({"status": 429}, "rate_limit_error", "rate_limit", True),
        ({"status": 429, "code": "lock_timeout"}, "rate_limit_error", "lock_timeout", True),
        ({"status": 500}, "api_error", None, True),
        ({"status": 503}, "api_error", None, True),
        ({"status": 500, "should_retry": False}, "api_error", None, False),
        ({"status": 429, "should_retry": False}, "rate_limit_error", "rate_limit", False),
        ({"status": "timeout"}, "api_connection_error", None, True),
    ],
)
async def test_transient_failures_are_retryable_unless_stripe_says_otherwise(
    fault: dict[str, Any],
    category: str,
    code: str | None,
    retryable: bool,
    standin: StandIn,
    standin_gateway: tuple[StripeGateway, Settings],
) -> None:
    """429/5xx/timeouts are retryable; `Stripe-Should-Retry: false` makes them terminal."""
    await configure(standin, faults=[{**fault, "times": 1}], hang_seconds=5)
    failure = await failure_of(standin_gateway, {"operation": "get_balance"})
    assert (failure.category, failure.detail.code, failure.retryable) == (category, code, retryable)
    assert "\n" not in failure.detail.message


async def test_reused_key_with_other_parameters_is_an_idempotency_error(
    standin: StandIn, standin_gateway: tuple[StripeGateway, Settings]
) -> None:
    """Stripe's idempotency_error is terminal."""
    await configure(standin)
    gateway, settings = standin_gateway
    await gateway.call(
        stripe_call(msgspec.convert(CHARGE, Request)),
        credential=settings.credentials["default"],
        stripe_account=None,
        idempotency_key="reuse-1",
    )
    failure = await failure_of(standin_gateway, {**CHARGE, "amount": 501}, key="reuse-1")
    assert (failure.detail.type, failure.retryable) == ("idempotency_error", False)


async def test_same_key_same_parameters_is_replayed_not_executed(
    standin: StandIn, standin_gateway: tuple[StripeGateway, Settings]
) -> None:
    """A retry with the same key reaches Stripe's idempotency layer: one side effect."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    gateway, settings = standin_gateway
    call = stripe_call(msgspec.convert(CHARGE, Request))
    first = await gateway.call(
        call,
        credential=settings.credentials["default"],
        stripe_account=None,
        idempotency_key="once-1",
    )
    second = await gateway.call(
        call,
        credential=settings.credentials["default"],
        stripe_account=None,
        idempotency_key="once-1",
    )
    assert bytes(first.body) == bytes(second.body)
    stats = await standin_request(standin.url, "GET", "/_standin/stats")
    assert (stats["executions_total"], stats["replays"]) == (1, 1)


async def test_rejected_key_is_an_authentication_failure_and_is_masked(
    standin: StandIn, standin_gateway: tuple[StripeGateway, Settings]
) -> None:
    """401: terminal, flagged as authentication, and the key never appears in the message."""
    revoked = "sk_test_51RevokedKeyAbcdefXYZ"
    await configure(standin, revoked_keys=[revoked])
    failure = await failure_of(
        standin_gateway,
        {"operation": "get_balance"},
        credential=StripeCredential("billing", Secret(revoked)),
    )
    assert failure.authentication is True
    assert (failure.detail.type, failure.detail.http_status, failure.retryable) == (
        "authentication_error",
        401,
        False,
    )
    assert failure.category == "authentication_error"
    assert revoked not in failure.detail.message
    assert failure.detail.message == "Invalid API Key provided: sk_test_[redacted]"


@pytest.mark.parametrize(
    ("status", "error_type", "authentication"),
    [(403, "permission_error", False), (401, "authentication_error", True)],
)
async def test_connected_account_without_access_is_typed_by_its_status(
    status: int,
    error_type: str,
    authentication: bool,
    standin: StandIn,
    standin_gateway: tuple[StripeGateway, Settings],
) -> None:
    """Stripe's body says `invalid_request_error` for a Stripe-Account the key cannot act for;
    the reply's type comes from the status (403 permission_error, 401 authentication_error),
    terminal, with Stripe's code; the key stays masked."""
    await configure(standin, revoked_accounts={"acct_1Revoked": status})
    failure = await failure_of(
        standin_gateway, CHARGE, key=f"connect-{status}", stripe_account="acct_1Revoked"
    )
    detail = failure.detail
    assert (detail.type, detail.code, detail.http_status, detail.retryable) == (
        error_type,
        "account_invalid",
        status,
        False,
    )
    assert (failure.category, failure.authentication) == (error_type, authentication)
    assert "acct_1Revoked" in detail.message
    assert "sk_test_123" not in detail.message


async def test_permission_error_without_connect_is_typed_permission_error(
    standin: StandIn, standin_gateway: tuple[StripeGateway, Settings]
) -> None:
    """A 403 for the platform itself (a restricted key missing a permission): the same typing,
    terminal, not an authentication failure."""
    await configure(standin, faults=[{"status": 403, "times": 1}])
    failure = await failure_of(standin_gateway, {"operation": "get_balance"})
    assert (failure.detail.type, failure.detail.http_status, failure.retryable) == (
        "permission_error",
        403,
        False,
    )
    assert failure.authentication is False


async def test_headers_carry_key_account_and_version(
    standin: StandIn, standin_gateway: tuple[StripeGateway, Settings]
) -> None:
    """POSTs carry Idempotency-Key; GETs do not; Stripe-Account and Stripe-Version are sent."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    gateway, settings = standin_gateway
    credential = settings.credentials["default"]
    await gateway.call(
        stripe_call(msgspec.convert(CHARGE, Request)),
        credential=credential,
        stripe_account="acct_1X",
        idempotency_key="hdr-1",
    )
    await gateway.call(
        stripe_call(msgspec.convert({"operation": "get_balance"}, Request)),
        credential=credential,
        stripe_account=None,
        idempotency_key="hdr-2",
    )
    stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    post, get = stats["recent"][-2:]
    assert (post["method"], post["idempotency_key"], post["stripe_account"]) == (
        "POST",
        "hdr-1",
        "acct_1X",
    )
    assert (get["method"], get["idempotency_key"], get["stripe_account"]) == ("GET", None, None)
    assert post["stripe_version"]


async def test_a_request_the_http_client_cannot_send_is_terminal_not_a_connection_error(
    standin: StandIn, standin_gateway: tuple[StripeGateway, Settings]
) -> None:
    """An idempotency key aiohttp refuses as header injection: the SDK reports it as a
    connection error, but it fails the same way every time, so it is terminal (a retry loop
    would hold its object's lock for the whole budget, or stall a meter partition for ever);
    the refused value is not quoted."""
    await standin_request(standin.url, "POST", "/_standin/reset")
    failure = await failure_of(standin_gateway, CHARGE, key="order-1\r\nX-Injected: yes")
    assert (failure.detail.type, failure.retryable) == ("api_connection_error", False)
    assert failure.status == "FAILED_WITH_TERMINAL_ERROR"
    assert "X-Injected" not in failure.detail.message
    stats = await standin_request(standin.url, "GET", "/_standin/stats?full=1")
    assert stats["executions"] == {}  # it never reached Stripe


async def test_a_refused_connection_stays_retryable() -> None:
    """A real connection failure (nothing listens on the port) is still retryable."""
    with socket.socket() as probe:  # a free port, then closed: connecting to it is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = gateway_settings(f"http://127.0.0.1:{port}")
    async with open_gateway(settings, Redactor()) as gateway:
        failure = await failure_of((gateway, settings), CHARGE, key="order-2")
    assert (failure.detail.type, failure.retryable) == ("api_connection_error", True)

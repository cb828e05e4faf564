"""The SDK's per-call work the gateway drops (``lighten_the_sdk_per_call``): its log lines
are formatted only when someone listens, telemetry is off, the AI-agent scan runs once."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
import stripe
import stripe._api_requestor
import stripe._util

from consumer.stripe.gateway import lighten_the_sdk_per_call


def _requestor() -> Any:
    """The SDK's requestor module, untyped (its log helpers are)."""
    return stripe._api_requestor


class Counted:
    """A log parameter that counts how often the SDK formats it."""

    def __init__(self) -> None:
        self.formatted = 0

    def __str__(self) -> str:
        self.formatted += 1
        return "value"


def test_the_sdk_hooks_are_still_there() -> None:
    """This SDK still has what the gateway lightens (else the saving silently vanished)."""
    lighten_the_sdk_per_call()
    requestor = _requestor()
    assert hasattr(requestor.log_info, "__wrapped__")
    assert hasattr(requestor.log_debug, "__wrapped__")
    assert hasattr(requestor._APIRequestor._detect_ai_agent, "__wrapped__")
    assert stripe.enable_telemetry is False


def test_log_lines_are_not_formatted_when_nobody_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the stripe logger at WARNING (as the service sets it), nothing is formatted."""
    lighten_the_sdk_per_call()
    monkeypatch.setattr(stripe, "log", None)
    monkeypatch.setattr(stripe._util, "STRIPE_LOG", None)
    monkeypatch.setattr(logging.getLogger("stripe"), "level", logging.WARNING)
    value = Counted()
    _requestor().log_info("Request to Stripe api", url=value)
    _requestor().log_debug("Post details", post_data=value)
    assert value.formatted == 0


def test_log_lines_still_reach_a_listening_logger(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever turns the stripe logger up still gets the SDK's lines, formatted as before."""
    lighten_the_sdk_per_call()
    monkeypatch.setattr(stripe, "log", None)
    monkeypatch.setattr(stripe._util, "STRIPE_LOG", None)
    value = Counted()
    with caplog.at_level(logging.DEBUG, logger="stripe"):
        _requestor().log_info("Request to Stripe api", url=value)
        _requestor().log_debug("Post details", post_data=value)
    assert value.formatted == 2
    assert [r.getMessage() for r in caplog.records] == [
        "message='Request to Stripe api' url=value",
        "message='Post details' post_data=value",
    ]


def test_the_ai_agent_marker_is_what_the_sdk_detects() -> None:
    """Detected once, the marker is the one the SDK's own scan finds in this environment."""
    lighten_the_sdk_per_call()
    detect = _requestor()._APIRequestor._detect_ai_agent
    assert detect(os.environ) == detect.__wrapped__(os.environ)


def _interpret(body: bytes, code: int) -> Any:
    """The SDK's own reading of a response, as ``raw_request_async`` does it."""
    lighten_the_sdk_per_call()
    requestor = _requestor()._APIRequestor(client=None)
    return requestor._interpret_response(body, code, {"request-id": "req_1"}, "V1")


def test_a_response_is_parsed_only_when_its_data_is_read() -> None:
    """A success keeps its body as sent and parses ``data`` (the SDK's OrderedDicts) on
    first reading only."""
    response = _interpret(b'{"id": "ch_1", "object": "charge", "amount": 42}', 200)
    assert "data" not in vars(response)
    assert response.body == '{"id": "ch_1", "object": "charge", "amount": 42}'
    assert response.data == {"id": "ch_1", "object": "charge", "amount": 42}
    assert type(response.data).__name__ == "OrderedDict"


def test_a_body_that_is_not_json_is_still_the_sdks_api_error() -> None:
    """Not JSON (a proxy's HTML page, a cut-off body): the SDK's APIError, as before."""
    for body in (b"<html>502 Bad Gateway</html>", b'{"id": "ch_1"', b'{"id": "ch_1"}x'):
        with pytest.raises(stripe.APIError, match="Invalid response body"):
            _interpret(body, 200)


def test_an_error_response_still_reads_its_error() -> None:
    """A 402 with a card error is the SDK's CardError with its code (``data`` read lazily)."""
    body = b'{"error": {"type": "card_error", "code": "card_declined", "message": "No."}}'
    with pytest.raises(stripe.CardError) as raised:
        _interpret(body, 402)
    assert raised.value.code == "card_declined"

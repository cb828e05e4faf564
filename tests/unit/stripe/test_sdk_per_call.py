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

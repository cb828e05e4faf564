"""The reply: the one terminal answer to a request, on the reply topic."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from consumer.contract.requests.base import ConductorFields

ReplyStatus = Literal["COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR"]

# Stripe's response body, passed through byte for byte (no decode and re-encode).
StripeObjectJson = Annotated[
    msgspec.Raw,
    Meta(
        extra_json_schema={
            "type": "object",
            "description": "The Stripe object as JSON; for lists {object, data, has_more, url}",
        }
    ),
]


class ReplyError(msgspec.Struct, kw_only=True, frozen=True):
    """Why a request did not complete. ``type`` is Stripe's error type (a 401 or 403 typed by
    its status: `authentication_error`, `permission_error`), `validation_error` for input the
    service rejected itself (``param`` the JSON path), or the service's own:
    `api_connection_error`, `internal_error`, `reply_undeliverable`."""

    type: str
    code: str | None = None
    decline_code: str | None = None
    message: str
    param: str | None = None
    http_status: int | None = None
    request_id: str | None = None
    retryable: bool = False

    @property
    def reason(self) -> str:
        """One readable line for Conductor's `reasonForIncompletion`."""
        label = self.decline_code or self.code or self.type
        return f"{label}: {self.message}"


class Reply(ConductorFields, kw_only=True, frozen=True):
    """The one terminal answer to a request, on the reply topic, keyed by the request's key.

    Conductor's fields from the request are echoed (absent ones are omitted); any field of the
    request whose name starts with `_` is echoed as well.
    """

    operation: str | None
    status: Annotated[
        ReplyStatus,
        Meta(
            description="COMPLETED; FAILED: transient, outlived the service's retries (also a "
            "request held CONSUMER_CREDENTIAL_HOLD_SECONDS, default 900, while Stripe rejects "
            "its integration's key: authentication_error); FAILED_WITH_TERMINAL_ERROR: "
            "retrying cannot help"
        ),
    ]
    output: StripeObjectJson | None = None
    error: ReplyError | None = None
    reasonForIncompletion: str | None = None
    idempotency_key: str | None = None
    deduplicated: Annotated[
        bool,
        Meta(
            description="Answered without a Stripe call: a copy of a request already answered "
            "COMPLETED (same idempotency key), a copy of a task already answered FAILED or "
            "FAILED_WITH_TERMINAL_ERROR (same taskId: answered the same, never run), or a "
            "meter event whose identifier was already delivered"
        ),
    ] = False
    attempts: int = 0

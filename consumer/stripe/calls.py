"""One call to Stripe's API and its answer, as plain values: what the operation table makes,
what the executor runs and the gateway sends, and what comes back."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

HttpMethod = Literal["GET", "POST", "DELETE"]


class StripeCall(msgspec.Struct, frozen=True):
    """One call to Stripe's API: ``POST /v1/customers/cus_123`` with its parameters."""

    http_method: HttpMethod
    path: str  # concrete: ids already in place
    params: dict[str, Any]
    locks: tuple[str, ...] = ()  # ids of the Stripe objects this call writes

    @property
    def writes(self) -> bool:
        """POSTs change state at Stripe: they carry an idempotency key."""
        return self.http_method == "POST"


class StripeResponse(msgspec.Struct, frozen=True):
    """Stripe's answer to a successful call: the JSON body as sent, untouched."""

    body: msgspec.Raw
    request_id: str | None
    http_status: int

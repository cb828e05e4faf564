"""What an operation is: a request type, the Stripe call it makes, and a pure mapping.

Operations do no I/O. Each maps its request Struct to a :class:`StripeCall`, which the Stripe
gateway (the only module importing ``stripe``) executes; so every mapping is testable without
a network, and the gateway is the one place that knows the SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import msgspec
from msgspec import UNSET

from consumer.messages import OperationRequest

R = TypeVar("R", bound=OperationRequest)
HttpMethod = Literal["GET", "POST", "DELETE"]


@dataclass(frozen=True, slots=True)
class StripeCall:
    """One call on the Stripe SDK's async client: ``client.v1.<service>.<action>_async``."""

    sdk_method: str  # e.g. "customers.create" or "billing.meter_events.create"
    resource_id: str | None
    params: dict[str, Any]
    http_method: HttpMethod
    locks: tuple[str, ...] = ()  # ids of the Stripe objects this call writes

    @property
    def writes(self) -> bool:
        """POSTs change state at Stripe: they carry an idempotency key."""
        return self.http_method == "POST"


@dataclass(frozen=True, slots=True)
class StripeResponse:
    """Stripe's answer to a successful call: the JSON body as sent, untouched."""

    body: msgspec.Raw
    request_id: str | None
    http_status: int


@dataclass(frozen=True, slots=True)
class Operation(Generic[R]):
    """An entry of the operation table: a request type and how it becomes a Stripe call."""

    request_type: type[R]
    http_method: HttpMethod
    path: str  # Stripe's path, for documentation and logs: "/v1/customers/{customer_id}"
    sdk_method: str
    to_params: Callable[[R], dict[str, Any]]
    resource_id: Callable[[R], str] | None = None
    # The objects a write changes, locked so two writes never meet at Stripe (lock_timeout).
    # Default: the object in the path, for writes.
    writes_to: Callable[[R], tuple[str, ...]] | None = None

    @property
    def name(self) -> str:
        return str(self.request_type.__struct_config__.tag)

    def stripe_call(self, request: R) -> StripeCall:
        resource_id = self.resource_id(request) if self.resource_id else None
        if self.writes_to is not None:
            locks = self.writes_to(request)
        elif self.http_method != "GET" and resource_id is not None:
            locks = (resource_id,)
        else:
            locks = ()
        return StripeCall(
            sdk_method=self.sdk_method,
            resource_id=resource_id,
            params=self.to_params(request),
            http_method=self.http_method,
            locks=locks,
        )


def given(**params: Any) -> dict[str, Any]:
    """The parameters that were given (UNSET ones dropped), in Stripe's names."""
    return {name: value for name, value in params.items() if value is not UNSET}


def no_params(_: OperationRequest) -> dict[str, Any]:
    return {}

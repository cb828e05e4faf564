"""What an operation is: a request type, the Stripe call it makes, and a pure mapping.

Operations do no I/O. Each maps its request Struct to a :class:`StripeCall` (method, path,
parameters), which the Stripe gateway (the only module importing ``stripe``) executes; so
every mapping is testable without a network, the README's table shows exactly what is
called, and the gateway is the one place that knows the SDK.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar
from urllib.parse import quote

from msgspec import UNSET

from consumer.contract.requests import OperationRequest
from consumer.stripe.calls import HttpMethod, StripeCall

R = TypeVar("R", bound=OperationRequest)
_PLACEHOLDER: Final = re.compile(r"\{[a-z_]+\}")


@dataclass(frozen=True, slots=True)
class Operation(Generic[R]):
    """An entry of the operation table: a request type and how it becomes a Stripe call."""

    request_type: type[R]
    http_method: HttpMethod
    path: str  # Stripe's path; `{…}` marks where the resource id goes: "/v1/customers/{id}"
    to_params: Callable[[R], dict[str, Any]]
    resource_id: Callable[[R], str] | None = None
    # The objects a write changes, locked so two writes never meet at Stripe (lock_timeout).
    # Default: the object in the path, for writes.
    writes_to: Callable[[R], tuple[str, ...]] | None = None

    @property
    def name(self) -> str:
        return str(self.request_type.__struct_config__.tag)

    def stripe_call(self, request: R) -> StripeCall:
        path = self.path
        if self.resource_id is not None:
            # Ids are validated to [A-Za-z0-9_]; quoting keeps the path safe regardless.
            path = _PLACEHOLDER.sub(quote(self.resource_id(request), safe=""), path, count=1)
        return StripeCall(self.http_method, path, self.to_params(request), self.written(request))

    def written(self, request: R) -> tuple[str, ...]:
        """The ids of the existing Stripe objects this request writes (none for reads and
        creates): the call's locks, and the pipeline's scheduling keys."""
        if self.writes_to is not None:
            return self.writes_to(request)
        if self.resource_id is not None and self.http_method != "GET":
            return (self.resource_id(request),)
        return ()


def given(**params: Any) -> dict[str, Any]:
    """The parameters that were given, in Stripe's names: absent (UNSET) and null ones are
    dropped (a null optional parameter means "not given"; Stripe clears fields with "")."""
    return {
        name: value for name, value in params.items() if value is not UNSET and value is not None
    }


def no_params(_: OperationRequest) -> dict[str, Any]:
    return {}

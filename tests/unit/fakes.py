"""Test doubles for the processor's collaborators (the Stripe gateway)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from consumer.contract.errors import StripeFailure
from consumer.contract.reply import ReplyError
from consumer.settings import Settings, StripeCredential, load_settings
from consumer.stripe.calls import StripeCall, StripeResponse


@dataclass
class RecordedCall:
    call: StripeCall
    api_key: str
    stripe_account: str | None
    idempotency_key: str | None


@dataclass
class FakeStripe:
    """Answers every call with `{"object": ..., "id": ...}`, or with queued failures first."""

    failures: list[StripeFailure] = field(default_factory=list)
    calls: list[RecordedCall] = field(default_factory=list)
    body: Callable[[StripeCall], dict[str, object]] = lambda call: {
        "object": call.path.split("/")[2],
        "id": call.path.split("/")[3] if call.path.count("/") >= 3 else "obj_new",
    }

    async def call(
        self,
        call: StripeCall,
        *,
        credential: StripeCredential,
        stripe_account: str | None,
        idempotency_key: str | None,
    ) -> StripeResponse:
        self.calls.append(
            RecordedCall(call, credential.api_key.reveal(), stripe_account, idempotency_key)
        )
        if self.failures:
            raise self.failures.pop(0)
        return StripeResponse(msgspec.Raw(msgspec.json.encode(self.body(call))), "req_fake", 200)


def failure(
    error_type: str,
    *,
    retryable: bool,
    code: str | None = None,
    message: str = "boom",
    authentication: bool = False,
    **extra: object,
) -> StripeFailure:
    return StripeFailure(
        ReplyError(type=error_type, code=code, message=message, retryable=retryable, **extra),  # type: ignore[arg-type]
        category=error_type,
        authentication=authentication,
    )


def settings(**overrides: str) -> Settings:
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "STRIPE_API_KEY": "sk_test_51DefaultKeyForUnitTests",
        **overrides,
    }
    return load_settings(environ)

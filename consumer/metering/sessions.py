"""Meter event sessions: the v2 stream's short-lived authentication tokens.

A session token lasts 15 minutes. One is kept per Stripe account (integration and connected
account), created on first use, refreshed a minute before it expires, and dropped when
Stripe says it expired anyway (clock skew, a revoked session), so the next batch gets a new
one. Concurrent batches share one creation. Sessions of accounts gone quiet are dropped once
expired, and at most ``max_sessions`` are kept (least recently used go first), so a producer
cycling through connected accounts cannot grow this without bound.

Sessions are created with the account's API key through the executor
(:class:`ExecutorSessionCreator`): behind the credential gate, so a key Stripe rejects holds
the meter lane (its events wait, uncommitted, and readiness says why) instead of failing
every event; within the key's rate limit; transient failures retried.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

import msgspec

from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.scopes import Expiring
from consumer.settings import StripeCredential
from consumer.stripe.calls import StripeCall
from consumer.stripe.executor import StripeCallExecutor
from consumer.stripe.retry import Attempts

REFRESH_MARGIN_SECONDS: Final = 60.0
MAX_SESSIONS: Final = 10_000  # accounts with a live session kept at once (about 2 MiB)


class SessionCreator(Protocol):
    async def create_meter_event_session(
        self, *, credential: StripeCredential, stripe_account: str | None
    ) -> tuple[str, float]:
        """A new session: (authentication token, expiry as Unix time)."""
        ...


class _SessionBody(msgspec.Struct):
    authentication_token: str
    expires_at: str  # RFC 3339


_session_decoder: Final = msgspec.json.Decoder(_SessionBody)
SESSION_PATH: Final = "/v2/billing/meter_event_session"


class ExecutorSessionCreator:
    """Creates sessions as an ordinary Stripe call, through the executor."""

    def __init__(self, executor: StripeCallExecutor) -> None:
        self._executor = executor

    async def create_meter_event_session(
        self, *, credential: StripeCredential, stripe_account: str | None
    ) -> tuple[str, float]:
        response = await self._executor.execute(
            StripeCall("POST", SESSION_PATH, {}),
            operation="create_meter_event",
            credential=credential,
            stripe_account=stripe_account,
            idempotency_key=f"meter-event-session:{uuid.uuid4().hex}",
            attempts=Attempts(),
        )
        session = _session_decoder.decode(response.body)
        expires_at = datetime.fromisoformat(session.expires_at).timestamp()
        return session.authentication_token, expires_at


@dataclass(slots=True)
class _Session:
    token: str
    expires_at: float


class MeterEventSessions:
    def __init__(
        self,
        creator: SessionCreator,
        clock: Callable[[], float] = time.time,
        *,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._creator = creator
        self._clock = clock
        self._sessions: Expiring[LedgerScope, _Session] = Expiring(max_sessions, clock)
        self._creating: dict[LedgerScope, asyncio.Future[_Session]] = {}  # in progress only
        self.created = 0

    def __len__(self) -> int:
        """Accounts with state here: kept sessions and creations in progress."""
        return len(self._sessions) + len(self._creating)

    async def token(self, scope: LedgerScope, credential: StripeCredential) -> str:
        session = self._sessions.get(scope)
        if session is not None and session.expires_at - self._clock() > REFRESH_MARGIN_SECONDS:
            return session.token
        creating = self._creating.get(scope)
        if creating is None:  # the first batch to need it creates it; the others wait for it
            creating = asyncio.ensure_future(self._create(scope, credential))
            self._creating[scope] = creating
            creating.add_done_callback(lambda _: self._creating.pop(scope, None))
        return (await asyncio.shield(creating)).token

    async def _create(self, scope: LedgerScope, credential: StripeCredential) -> _Session:
        token, expires_at = await self._creator.create_meter_event_session(
            credential=credential, stripe_account=scope.stripe_account
        )
        session = _Session(token, expires_at)
        self._sessions.put(scope, session, expires_at)
        self.created += 1
        return session

    def expired(self, scope: LedgerScope, token: str) -> None:
        """Stripe rejected ``token`` as expired: forget it (unless already replaced)."""
        session = self._sessions.get(scope)
        if session is not None and session.token == token:
            self._sessions.pop(scope)

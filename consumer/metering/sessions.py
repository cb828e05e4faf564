"""Meter event sessions: the v2 stream's short-lived authentication tokens.

A session token lasts 15 minutes. One is kept per Stripe account (integration and connected
account), created on first use, refreshed a minute before it expires, and dropped when
Stripe says it expired anyway (clock skew, a revoked session), so the next batch gets a new
one. Concurrent batches share one creation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from consumer.identifier_ledger import LedgerScope
from consumer.settings import StripeCredential

REFRESH_MARGIN_SECONDS: Final = 60.0


class SessionCreator(Protocol):
    async def create_meter_event_session(
        self, *, credential: StripeCredential, stripe_account: str | None
    ) -> tuple[str, float]:
        """A new session: (authentication token, expiry as Unix time)."""
        ...


@dataclass(slots=True)
class _Session:
    token: str
    expires_at: float


class MeterEventSessions:
    def __init__(self, creator: SessionCreator, clock: Callable[[], float] = time.time) -> None:
        self._creator = creator
        self._clock = clock
        self._sessions: dict[LedgerScope, _Session] = {}
        self._locks: dict[LedgerScope, asyncio.Lock] = {}
        self.created = 0

    async def token(self, scope: LedgerScope, credential: StripeCredential) -> str:
        session = self._sessions.get(scope)
        if session is not None and session.expires_at - self._clock() > REFRESH_MARGIN_SECONDS:
            return session.token
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:
            session = self._sessions.get(scope)  # another batch may have refreshed it meanwhile
            if session is None or session.expires_at - self._clock() <= REFRESH_MARGIN_SECONDS:
                token, expires_at = await self._creator.create_meter_event_session(
                    credential=credential, stripe_account=scope.stripe_account
                )
                session = self._sessions[scope] = _Session(token, expires_at)
                self.created += 1
            return session.token

    def expired(self, scope: LedgerScope, token: str) -> None:
        """Stripe rejected ``token`` as expired: forget it (unless already replaced)."""
        session = self._sessions.get(scope)
        if session is not None and session.token == token:
            del self._sessions[scope]

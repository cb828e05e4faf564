"""v2 meter event sessions: created once, refreshed before expiry, replaced when Stripe says
the token expired."""

from __future__ import annotations

import asyncio

from consumer.identifier_ledger import LedgerScope
from consumer.metering.sessions import MeterEventSessions
from consumer.settings import StripeCredential
from tests.unit.fakes import settings

SCOPE = LedgerScope("default", None)


class Creator:
    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.created = 0

    async def create_meter_event_session(
        self, *, credential: StripeCredential, stripe_account: str | None
    ) -> tuple[str, float]:
        self.created += 1
        await asyncio.sleep(0.01)
        return f"token-{self.created}", self.clock[0] + 900


def credential() -> StripeCredential:
    return settings().credentials["default"]


async def test_token_is_reused_until_a_minute_before_expiry() -> None:
    """One session serves every batch until it is about to expire."""
    clock = [0.0]
    creator = Creator(clock)
    sessions = MeterEventSessions(creator, clock=lambda: clock[0])
    assert await sessions.token(SCOPE, credential()) == "token-1"
    clock[0] = 839.0
    assert await sessions.token(SCOPE, credential()) == "token-1"
    clock[0] = 841.0
    assert await sessions.token(SCOPE, credential()) == "token-2"


async def test_concurrent_batches_share_one_creation() -> None:
    """Ten batches needing a token at once create one session."""
    clock = [0.0]
    creator = Creator(clock)
    sessions = MeterEventSessions(creator, clock=lambda: clock[0])
    tokens = await asyncio.gather(*(sessions.token(SCOPE, credential()) for _ in range(10)))
    assert set(tokens) == {"token-1"}
    assert creator.created == 1


async def test_expired_token_is_replaced() -> None:
    """When Stripe says the session expired, the next batch gets a new one."""
    clock = [0.0]
    creator = Creator(clock)
    sessions = MeterEventSessions(creator, clock=lambda: clock[0])
    await sessions.token(SCOPE, credential())
    sessions.expired(SCOPE, "token-1")
    assert await sessions.token(SCOPE, credential()) == "token-2"
    sessions.expired(SCOPE, "token-1")  # a late report about the old token changes nothing
    assert await sessions.token(SCOPE, credential()) == "token-2"

"""v2 meter event sessions: created once, refreshed before expiry, replaced when Stripe says
the token expired."""

from __future__ import annotations

import asyncio

from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.sessions import MeterEventSessions
from consumer.settings import StripeCredential
from consumer.stripe.credential_gate import CredentialHeld
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


async def test_sessions_of_many_accounts_stay_bounded_and_expire() -> None:
    """A producer cycling through 5,000 connected accounts: at most `max_sessions` sessions
    are kept (least recently used go), nothing else is left per account, and once every
    session has expired the next one's creation drops them all."""

    class Instant(Creator):
        async def create_meter_event_session(
            self, *, credential: StripeCredential, stripe_account: str | None
        ) -> tuple[str, float]:
            self.created += 1
            return f"token-{self.created}", self.clock[0] + 900

    clock = [0.0]
    sessions = MeterEventSessions(Instant(clock), clock=lambda: clock[0], max_sessions=100)
    for i in range(5_000):
        await sessions.token(LedgerScope("default", f"acct_{i}"), credential())
        assert len(sessions) <= 100
    recent = LedgerScope("default", "acct_4999")
    assert await sessions.token(recent, credential()) == "token-5000"  # kept: most recent
    clock[0] = 1_000.0  # every session has expired
    await sessions.token(SCOPE, credential())
    assert len(sessions) == 1


async def test_a_failed_creation_leaves_nothing_behind() -> None:
    """A creation that fails (here: the key is rejected) is shared by its waiters and
    forgotten; the next batch tries again."""

    class Refusing(Creator):
        async def create_meter_event_session(
            self, *, credential: StripeCredential, stripe_account: str | None
        ) -> tuple[str, float]:
            self.created += 1
            await asyncio.sleep(0.01)
            if self.created == 1:
                raise CredentialHeld("default")
            return "token-2", self.clock[0] + 900

    clock = [0.0]
    creator = Refusing(clock)
    sessions = MeterEventSessions(creator, clock=lambda: clock[0])
    results = await asyncio.gather(
        *(sessions.token(SCOPE, credential()) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, CredentialHeld) for r in results)
    assert (creator.created, len(sessions)) == (1, 0)
    assert await sessions.token(SCOPE, credential()) == "token-2"

"""The in-process identifier ledger: atomic claims, leases, delivered marks that expire."""

from __future__ import annotations

from consumer.metering.ledgers.memory import MemoryIdentifierLedger
from consumer.metering.ledgers.protocol import ClaimState, LedgerScope, Renewal

SCOPE = LedgerScope("default", None)
CLAIMED, DELIVERED, PENDING = ClaimState.CLAIMED, ClaimState.DELIVERED, ClaimState.PENDING
HELD, GONE, TAKEN = Renewal.HELD, Renewal.GONE, Renewal.TAKEN


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ledger(clock: Clock, owner: str = "a", max_entries: int = 1000) -> MemoryIdentifierLedger:
    return MemoryIdentifierLedger(
        window_seconds=100, lease_seconds=10, max_entries=max_entries, owner=owner, clock=clock
    )


async def test_claim_then_delivered_then_deduplicated() -> None:
    """A claimed identifier is pending for others; once delivered, everyone sees it done."""
    clock = Clock()
    mine = ledger(clock)
    assert await mine.claim(SCOPE, ["i1", "i2"]) == [CLAIMED, CLAIMED]
    assert await mine.claim(SCOPE, ["i1"]) == [PENDING]
    await mine.mark_delivered(SCOPE, ["i1"])
    assert await mine.claim(SCOPE, ["i1", "i2", "i3"]) == [DELIVERED, PENDING, CLAIMED]


async def test_release_frees_only_its_own_claims() -> None:
    """After a failed send the claim is released, so a retry (by anyone) can claim it."""
    clock = Clock()
    mine = ledger(clock)
    await mine.claim(SCOPE, ["i1"])
    await mine.release(SCOPE, ["i1"])
    assert await mine.claim(SCOPE, ["i1"]) == [CLAIMED]


async def test_lease_expires_when_its_owner_died() -> None:
    """A claim held by a process that crashed expires; the redelivered event claims it."""
    clock = Clock()
    mine = ledger(clock)
    await mine.claim(SCOPE, ["i1"])
    clock.now = 9.9
    assert await mine.claim(SCOPE, ["i1"]) == [PENDING]
    clock.now = 10.0
    assert await mine.claim(SCOPE, ["i1"]) == [CLAIMED]


async def test_delivered_marks_expire_after_the_window() -> None:
    """Identifiers are remembered for the window (35 days by default), then forgotten."""
    clock = Clock()
    mine = ledger(clock)
    await mine.claim(SCOPE, ["i1"])
    await mine.mark_delivered(SCOPE, ["i1"])
    clock.now = 99.9
    assert await mine.claim(SCOPE, ["i1"]) == [DELIVERED]
    clock.now = 100.0
    assert await mine.claim(SCOPE, ["i1"]) == [CLAIMED]


async def test_scopes_are_separate_accounts() -> None:
    """The same identifier on another Stripe account is another event."""
    clock = Clock()
    mine = ledger(clock)
    await mine.claim(SCOPE, ["i1"])
    await mine.mark_delivered(SCOPE, ["i1"])
    assert await mine.claim(LedgerScope("default", "acct_1"), ["i1"]) == [CLAIMED]
    assert await mine.claim(LedgerScope("billing", None), ["i1"]) == [CLAIMED]


async def test_memory_stays_bounded() -> None:
    """The oldest entries go first past the bound."""
    clock = Clock()
    mine = ledger(clock, max_entries=3)
    await mine.claim(SCOPE, ["a", "b", "c", "d"])
    assert len(mine) == 3
    assert await mine.claim(SCOPE, ["a"]) == [CLAIMED]


async def test_renew_gives_a_live_owners_claim_a_full_lease_again() -> None:
    """A renewed claim outlives its first lease; one expired or settled is not renewed."""
    clock = Clock()
    mine = ledger(clock)
    await mine.claim(SCOPE, ["i1", "i2", "i3"])
    await mine.mark_delivered(SCOPE, ["i3"])
    clock.now = 9.0
    assert await mine.renew(SCOPE, ["i1", "i3"]) == [HELD, GONE]
    clock.now = 18.0
    assert await mine.claim(SCOPE, ["i1", "i2", "i3"]) == [PENDING, CLAIMED, DELIVERED]
    clock.now = 19.0
    assert await mine.renew(SCOPE, ["i1"]) == [GONE]  # ran out at 19: not its any more

"""What a ledger answers (:class:`ClaimState`), per Stripe account (:class:`LedgerScope`), and
the :class:`IdentifierLedger` protocol every ledger keeps (see the package docstring)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

import msgspec


class ClaimState(enum.Enum):
    CLAIMED = "claimed"
    DELIVERED = "delivered"
    PENDING = "pending"


class Renewal(enum.Enum):
    """What renewing a claim found: still this owner's (and renewed for a full lease), gone
    (expired, or settled and dropped), or another owner's now (taken after it ran out)."""

    HELD = "held"
    GONE = "gone"
    TAKEN = "taken"


class LedgerScope(msgspec.Struct, frozen=True):
    """Identifiers are unique per Stripe account: the integration and connected account."""

    integration: str
    stripe_account: str | None

    def key(self, identifier: str) -> str:
        return f"{self.integration}:{self.stripe_account or '-'}:{identifier}"


class IdentifierLedger(Protocol):
    async def claim(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[ClaimState]: ...

    async def mark_delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> None: ...

    async def release(self, scope: LedgerScope, identifiers: Sequence[str]) -> None: ...

    async def renew(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[Renewal]:
        """Give this owner's claims a full lease again, each only while it is still this
        owner's (HELD); GONE for one no longer there (expired, or settled), TAKEN for one
        another owner claimed after it ran out."""

    async def delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[bool]:
        """Read only: whether each identifier is recorded `delivered`."""

    async def forget(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        """Drop `delivered` entries: Stripe rejected them, so a corrected resend is sent."""

    async def close(self) -> None: ...

"""Which meter-event identifiers have been delivered to Stripe: the dedup memory.

Each identifier must count exactly once in Stripe, across redeliveries, producer retries,
rebalances, restarts and replicas; Stripe itself only deduplicates for 24 hours but accepts
events 35 days old. The ledger records identifiers for a window (default 35 days) with an
atomic claim, so two replicas holding duplicates of one event never both send it:

::

    absent ──claim──► pending(owner, lease) ──delivered──► delivered (expires after window)
                            │
                            └──release (send failed) / lease expiry (owner died)──► absent

- ``claim`` answers per identifier: ``CLAIMED`` (send it), ``DELIVERED`` (already counted:
  answer "deduplicated"), or ``PENDING`` (another sender holds it now: ask again shortly).
- ``mark_delivered`` after Stripe accepted the batch; ``release`` after it failed.

A crash between Stripe accepting and ``mark_delivered`` leaves a pending claim that expires
after the lease; the redelivered record then claims and sends again, and Stripe's own 24-hour
identifier dedup absorbs that second send. Keys are scoped per Stripe account (identifiers are
unique per account).

:class:`MemoryLedger` keeps this in process (bounded, for one replica and for tests); the
Redis ledger (``shared_state/ledger.py``) shares it between replicas and keeps it across restarts.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec


class ClaimState(enum.Enum):
    CLAIMED = "claimed"
    DELIVERED = "delivered"
    PENDING = "pending"


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

    async def close(self) -> None: ...


_DELIVERED = "delivered"


class MemoryLedger:
    """The ledger in this process: bounded (oldest entries go first) and expiring."""

    def __init__(
        self,
        *,
        window_seconds: float,
        lease_seconds: float,
        max_entries: int,
        owner: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window_seconds
        self._lease = lease_seconds
        self._max_entries = max_entries
        self._owner = owner
        self._clock = clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()  # key -> (state, expiry)

    def __len__(self) -> int:
        return len(self._entries)

    def _current(self, key: str, now: float) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        return entry[0]

    def _put(self, key: str, state: str, expiry: float) -> None:
        self._entries[key] = (state, expiry)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def claim(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[ClaimState]:
        now = self._clock()
        states = []
        for identifier in identifiers:
            key = scope.key(identifier)
            current = self._current(key, now)
            if current is None:
                self._put(key, f"pending:{self._owner}", now + self._lease)
                states.append(ClaimState.CLAIMED)
            elif current == _DELIVERED:
                states.append(ClaimState.DELIVERED)
            else:
                states.append(ClaimState.PENDING)
        return states

    async def mark_delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        expiry = self._clock() + self._window
        for identifier in identifiers:
            self._put(scope.key(identifier), _DELIVERED, expiry)

    async def release(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        mine = f"pending:{self._owner}"
        for identifier in identifiers:
            key = scope.key(identifier)
            entry = self._entries.get(key)
            if entry is not None and entry[0] == mine:
                del self._entries[key]

    async def close(self) -> None:
        return None

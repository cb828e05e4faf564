"""The identifier ledger in this process: bounded (oldest entries go first) and expiring. Exact
for one replica that never restarts; the Redis ledger is for everything else."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from consumer.metering.ledgers.protocol import ClaimState, LedgerScope, Renewal

_DELIVERED = "delivered"


class MemoryIdentifierLedger:
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

    async def renew(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[Renewal]:
        now = self._clock()
        mine = f"pending:{self._owner}"
        held = []
        for identifier in identifiers:
            key = scope.key(identifier)
            current = self._current(key, now)
            if current == mine:
                self._put(key, mine, now + self._lease)
                held.append(Renewal.HELD)
            elif current is not None and current.startswith("pending:"):
                held.append(Renewal.TAKEN)
            else:  # expired, or settled (Redis drops a settled claim's pending key)
                held.append(Renewal.GONE)
        return held

    async def delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[bool]:
        now = self._clock()
        return [self._current(scope.key(i), now) == _DELIVERED for i in identifiers]

    async def forget(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        for identifier in identifiers:
            key = scope.key(identifier)
            if self._entries.get(key, ("", 0.0))[0] == _DELIVERED:
                del self._entries[key]

    async def close(self) -> None:
        return None

"""Writes to the same Stripe object, one at a time.

Stripe answers concurrent writes to one object with 429 `lock_timeout`. Requests with
different record keys run concurrently, so two workflows updating the same customer could
collide; a lock per object (per credential and connected account) serialises them here
instead. Locks exist only while someone holds or waits for them.

The pipeline's scheduler already runs a request only when no other request writing the same
objects runs (engine/scheduler.py: the objects are scheduling keys, so a write waiting for
its turn holds no worker slot); these locks keep the rule for any other caller of the
executor, and are then never contended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable, Iterable


class ObjectLocks:
    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._users: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def holding(self, keys: Iterable[Hashable]) -> AsyncIterator[None]:
        """Hold every lock in ``keys`` (taken in a fixed order, so two holders never deadlock)."""
        ordered = sorted(set(keys), key=repr)
        if not ordered:  # reads and creates lock nothing: no machinery on the hot path
            yield
            return
        async with contextlib.AsyncExitStack() as stack:
            for key in ordered:
                await stack.enter_async_context(self._one(key))
            yield

    @contextlib.asynccontextmanager
    async def _one(self, key: Hashable) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]

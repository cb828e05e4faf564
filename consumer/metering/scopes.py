"""State that must not grow with the number of keys ever seen: :class:`Expiring`, a map
whose values expire, bounded to ``max_entries`` (least recently used first).

A platform's producers may cycle through thousands of connected accounts; the meter lane
keeps a little state per account (a session token, a fallback deadline), and the reply
memory an answer per request (engine/reply_memory.py). An expired entry is gone when next
looked up or when it reaches the least recently used end, and beyond ``max_entries`` the
least recently used entry goes (it is only recreated if that key comes back: a new
session, say).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Expiring(Generic[K, V]):
    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, scope: K) -> V | None:
        """The value while it has not expired (and mark it recently used); else None."""
        entry = self._entries.get(scope)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= self._clock():
            del self._entries[scope]
            return None
        self._entries.move_to_end(scope)
        return value

    def put(self, scope: K, value: V, expires_at: float) -> None:
        self._entries[scope] = (value, expires_at)
        self._entries.move_to_end(scope)
        self._prune()

    def pop(self, scope: K) -> V | None:
        entry = self._entries.pop(scope, None)
        return entry[0] if entry is not None else None

    def _prune(self) -> None:
        """Expired entries at the least recently used end go; so does anything beyond the
        bound. Amortised: each entry is dropped once."""
        now = self._clock()
        while self._entries:
            oldest, (_, expires_at) = next(iter(self._entries.items()))
            if expires_at > now and len(self._entries) <= self._max_entries:
                return
            del self._entries[oldest]

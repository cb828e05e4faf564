"""Recent terminal outcomes by idempotency key, so a republished request is answered again
without calling Stripe.

Conductor republishes a pending `asyncComplete` EVENT task's record on every decide, and Kafka
redelivers after a crash: the same logical request arrives many times. Only terminal outcomes
are remembered (COMPLETED, FAILED_WITH_TERMINAL_ERROR): a transient FAILED must reach Stripe
again when Conductor retries the task. An entry also remembers the request's hash, so a caller
that reuses its own ``idempotency_key`` for different parameters is not answered with another
request's result (Stripe answers that with an idempotency error instead).

Bounded (least recently used entries go first) and expiring; in process, per replica.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import msgspec

from consumer.replies import Outcome

MemoryKey = tuple[str, str, str]  # (integration, stripe_account, idempotency key)


class _Entry(msgspec.Struct, frozen=True):
    outcome: Outcome
    request_hash: str
    expires_at: float


class ReplyMemory:
    def __init__(
        self, max_entries: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[MemoryKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def recall(self, key: MemoryKey, request_hash: str) -> Outcome | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[key]
            return None
        if entry.request_hash != request_hash:
            return None
        self._entries.move_to_end(key)
        return entry.outcome

    def remember(self, key: MemoryKey, request_hash: str, outcome: Outcome) -> None:
        if not outcome.terminal or self._max_entries == 0 or self._ttl <= 0:
            return
        self._entries[key] = _Entry(outcome, request_hash, self._clock() + self._ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

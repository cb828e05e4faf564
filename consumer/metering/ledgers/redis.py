"""The identifier ledger in Redis (the package docstring says what it records).

Shared by every replica of the consumer group and kept across restarts (Redis persistence),
with Redis's own key expiry for the window. Each operation is one Lua script call per batch
(up to 100 identifiers), so the cost is one round trip per batch, and a claim is atomic: two
replicas holding duplicates of one event never both get ``CLAIMED``. When Redis does not
answer, every call raises :class:`SharedStateUnavailable`: the batcher then waits and tries
again, and never sends an identifier it could not claim.

Keys: ``<prefix>meter:<integration>:<account>:<identifier>``; values ``pending:<owner>`` (with
the lease as TTL) or ``delivered`` (with the window as TTL). Memory is about 100 bytes per
identifier in the window: 10 million identifiers take about 1 GiB. For Redis Cluster, all
keys of one call must share a slot: not supported (use a standalone or Sentinel Redis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from consumer.metering.ledgers.protocol import ClaimState, LedgerScope
from consumer.shared_state.redis_client import RedisConnection

_USE: Final = "meter_ledger"
_CLAIM: Final = """
local states = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
    states[i] = 'claimed'
  else
    local current = redis.call('GET', key)
    if current == 'delivered' then states[i] = 'delivered' else states[i] = 'pending' end
  end
end
return states
"""
_DELIVERED: Final = """
for _, key in ipairs(KEYS) do redis.call('SET', key, 'delivered', 'PX', ARGV[1]) end
return #KEYS
"""
_RELEASE: Final = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key); released = released + 1 end
end
return released
"""
_FORGET: Final = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == 'delivered' then redis.call('DEL', key) end
end
return #KEYS
"""


class RedisIdentifierLedger:
    def __init__(
        self,
        connection: RedisConnection,
        *,
        window_seconds: float,
        lease_seconds: float,
        owner: str,
    ) -> None:
        self._redis = connection
        self._window_ms = str(int(window_seconds * 1000))
        self._lease_ms = str(int(lease_seconds * 1000))
        self._pending = f"pending:{owner}"
        self._prefix = f"{connection.prefix}meter:"
        self._claim = connection.script(_CLAIM)
        self._delivered = connection.script(_DELIVERED)
        self._release = connection.script(_RELEASE)
        self._forget = connection.script(_FORGET)

    def _keys(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[str]:
        return [self._prefix + scope.key(identifier) for identifier in identifiers]

    async def claim(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[ClaimState]:
        if not identifiers:
            return []
        states = await self._redis.run(
            self._claim, self._keys(scope, identifiers), [self._pending, self._lease_ms], use=_USE
        )
        return [
            ClaimState(state.decode() if isinstance(state, bytes) else state) for state in states
        ]

    async def mark_delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        if identifiers:
            await self._redis.run(
                self._delivered, self._keys(scope, identifiers), [self._window_ms], use=_USE
            )

    async def release(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        if identifiers:
            await self._redis.run(
                self._release, self._keys(scope, identifiers), [self._pending], use=_USE
            )

    async def delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[bool]:
        if not identifiers:
            return []
        values = await self._redis.get_many(self._keys(scope, identifiers), use=_USE)
        return [value == b"delivered" for value in values]

    async def forget(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        if identifiers:
            await self._redis.run(self._forget, self._keys(scope, identifiers), [], use=_USE)

    async def close(self) -> None:
        return None  # the connection is closed by its owner (it serves every use)

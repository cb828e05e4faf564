"""The identifier ledger in Redis: the only module that imports ``redis``.

Shared by every replica of the consumer group and kept across restarts (Redis persistence),
with Redis's own key expiry for the window. Each operation is one Lua script call per batch
(up to 100 identifiers), so the cost is one round trip per batch, and a claim is atomic: two
replicas holding duplicates of one event never both get ``CLAIMED``.

Keys: ``<prefix><integration>:<account>:<identifier>``; values ``pending:<owner>`` (with the
lease as TTL) or ``delivered`` (with the window as TTL). Memory is about 100 bytes per
identifier in the window: 10 million identifiers take about 1 GiB. For Redis Cluster, all
keys of one call must share a slot: not supported (use a standalone or Sentinel Redis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as redis

from consumer.identifier_ledger import ClaimState, LedgerScope

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


class RedisLedger:
    def __init__(
        self,
        url: str,
        *,
        window_seconds: float,
        lease_seconds: float,
        owner: str,
        prefix: str = "stripe-consumer:meter:",
    ) -> None:
        self._client: Any = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._window_ms = str(int(window_seconds * 1000))
        self._lease_ms = str(int(lease_seconds * 1000))
        self._pending = f"pending:{owner}"
        self._prefix = prefix
        self._claim = self._client.register_script(_CLAIM)
        self._delivered = self._client.register_script(_DELIVERED)
        self._release = self._client.register_script(_RELEASE)

    def _keys(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[str]:
        return [self._prefix + scope.key(identifier) for identifier in identifiers]

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def claim(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[ClaimState]:
        if not identifiers:
            return []
        states = await self._claim(
            keys=self._keys(scope, identifiers), args=[self._pending, self._lease_ms]
        )
        return [
            ClaimState(state.decode() if isinstance(state, bytes) else state) for state in states
        ]

    async def mark_delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        if identifiers:
            await self._delivered(keys=self._keys(scope, identifiers), args=[self._window_ms])

    async def release(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        if identifiers:
            await self._release(keys=self._keys(scope, identifiers), args=[self._pending])

    async def close(self) -> None:
        await self._client.aclose()

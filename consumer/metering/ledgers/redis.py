"""The identifier ledger in Redis (the package docstring says what it records).

Shared by every replica of the consumer group and kept across restarts (Redis persistence).
Each operation is one Lua script call per batch (up to 100 identifiers; on a Redis Cluster one
call per hash slot the batch touches, run together), and a claim is atomic: two replicas
holding duplicates of one event never both get ``CLAIMED``. When Redis does not answer, every
call raises :class:`SharedStateUnavailable`: the batcher then waits and tries again, and never
sends an identifier it could not claim.

The layout (``ledger_layout.LedgerLayout`` computes the names) is sized for billions of
identifiers: an identifier is hashed to 16 bytes (BLAKE2b) and a settled one is a field of a
small hash in a time bucket: ``<base>:<bucket>:<shard>`` where ``<base>`` is
``<prefix>meter:{<integration>:<account>:<group>}:<bucket seconds>`` (the hash tag puts each
of 256 groups on one cluster slot), a bucket is an eighth of the window (by Redis's clock),
and ``<base>:<bucket>:n`` says how many shards that bucket has (fixed when the bucket opens,
from the rate the layout is sized for, so that a hash holds at most ~96 fields and Redis
keeps it in its compact listpack encoding). A bucket expires as a whole, ``window`` after it
closes: an identifier is remembered at least the window, at most an eighth longer; a claim
looks in nine buckets. Changing the window changes the bucket length, so identifiers settled
before the change are not seen after it (Stripe's own 24-hour dedup still covers the last
day). A pending claim is a key of its own, ``<prefix>meter:{...}:p:<hex digest>``, holding
``pending:<owner>`` with the lease as TTL. Memory: 25-29 bytes per settled identifier against
~200 for the key-per-identifier layout before it (``bench/ledger_sizing.py`` measures both).

Settled states are stored as a code ('1' for delivered; another state as its value), so the
states of :class:`ClaimState` stay the interface. Identifiers settled by the earlier layout
(``<prefix>meter:<integration>:<account>:<identifier>``) still answer on a single Redis
(``read_legacy_keys``) until they expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from consumer.metering.ledgers.ledger_layout import LedgerLayout, Placed
from consumer.metering.ledgers.protocol import ClaimState, LedgerScope
from consumer.shared_state.redis_client import LuaScript, RedisConnection

_USE: Final = "meter_ledger"
_CODES: Final = {ClaimState.DELIVERED: "1"}
_STATES: Final = {code: state for state, code in _CODES.items()}

# KEYS: each identifier's pending key, then (legacy on) each one's key of the earlier layout.
# ARGV: pending value, lease ms, buckets to look back, bucket seconds, legacy 1/0, then per
# identifier: base, shard number, digest. Answers per identifier: 'claimed', 'pending' or the
# code of the state it settled in.
_CLAIM: Final = """
local now = redis.call('TIME')
local current = math.floor(tonumber(now[1]) / tonumber(ARGV[4]))
local oldest = current - tonumber(ARGV[3])
local shards = {}
local function settled(base, shard, digest)
  for b = current, oldest, -1 do
    local bucket = base .. ':' .. b
    local n = shards[bucket]
    if n == nil then
      n = tonumber(redis.call('GET', bucket .. ':n') or '0')
      shards[bucket] = n
    end
    if n > 0 then
      local state = redis.call('HGET', bucket .. ':' .. (shard % n), digest)
      if state then return state end
    end
  end
  return nil
end
local legacy = ARGV[5] == '1'
local count = #KEYS
if legacy then count = count / 2 end
local states = {}
for i = 1, count do
  local j = 5 + (i - 1) * 3
  local state = settled(ARGV[j + 1], tonumber(ARGV[j + 2]), ARGV[j + 3])
  if state == nil and legacy then
    local old = redis.call('GET', KEYS[count + i])
    if old == 'delivered' then state = '1' elseif old then state = 'pending' end
  end
  if state ~= nil then
    states[i] = state
  elseif redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then
    states[i] = 'claimed'
  else
    states[i] = 'pending'
  end
end
return states
"""
# KEYS: each identifier's pending key. ARGV: state code, shards of a new bucket, bucket
# seconds, window seconds, then per identifier: base, shard number, digest.
_SETTLE: Final = """
local now = redis.call('TIME')
local seconds = tonumber(ARGV[3])
local current = math.floor(tonumber(now[1]) / seconds)
local expire_at = (current + 1) * seconds + tonumber(ARGV[4])
local shards, expiring = {}, {}
for i = 1, #KEYS do
  local j = 4 + (i - 1) * 3
  local bucket = ARGV[j + 1] .. ':' .. current
  local n = shards[bucket]
  if n == nil then
    redis.call('SET', bucket .. ':n', ARGV[2], 'NX', 'EXAT', expire_at)
    n = tonumber(redis.call('GET', bucket .. ':n'))
    shards[bucket] = n
  end
  local key = bucket .. ':' .. (tonumber(ARGV[j + 2]) % n)
  redis.call('HSET', key, ARGV[j + 3], ARGV[1])
  if not expiring[key] then
    redis.call('EXPIREAT', key, expire_at)
    expiring[key] = true
  end
  redis.call('DEL', KEYS[i])
end
return #KEYS
"""
_RELEASE: Final = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key); released = released + 1 end
end
return released
"""


class RedisIdentifierLedger:
    def __init__(
        self,
        connection: RedisConnection,
        *,
        window_seconds: float,
        lease_seconds: float,
        owner: str,
        events_per_second: float = 1_000.0,
        read_legacy_keys: bool | None = None,
    ) -> None:
        self._redis = connection
        self._layout = LedgerLayout(
            f"{connection.prefix}meter:",
            window_seconds=window_seconds,
            events_per_second=events_per_second,
        )
        self._lease_ms = str(int(lease_seconds * 1000))
        self._pending = f"pending:{owner}"
        self._legacy = not connection.clustered if read_legacy_keys is None else read_legacy_keys
        self._claim = connection.script(_CLAIM)
        self._settle = connection.script(_SETTLE)
        self._release = connection.script(_RELEASE)

    async def claim(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[ClaimState]:
        layout = self._layout
        head = [self._pending, self._lease_ms, str(layout.lookback_buckets)]
        head += [str(layout.bucket_seconds), "1" if self._legacy else "0"]

        def call(placed: list[Placed]) -> tuple[list[str], list[str | bytes]]:
            keys = [p.pending_key for p in placed]
            if self._legacy:
                keys += [layout.legacy_key(scope, p.identifier) for p in placed]
            return keys, [*head, *_per_identifier(placed)]

        answers = await self._run(self._claim, scope, identifiers, call)
        return [_state(answer) for answer in answers]

    async def mark_delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        await self._settled(scope, identifiers, ClaimState.DELIVERED)

    async def release(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        await self._run(
            self._release,
            scope,
            identifiers,
            lambda placed: ([p.pending_key for p in placed], [self._pending]),
        )

    async def close(self) -> None:
        return None  # the connection is closed by its owner (it serves every use)

    async def _settled(
        self, scope: LedgerScope, identifiers: Sequence[str], state: ClaimState
    ) -> None:
        """Record identifiers as settled in ``state`` (for the window) and drop their claims."""
        layout = self._layout
        head: list[str | bytes] = [_CODES.get(state, state.value), str(layout.new_bucket_shards)]
        head += [str(layout.bucket_seconds), str(layout.window_seconds)]
        await self._run(
            self._settle,
            scope,
            identifiers,
            lambda placed: ([p.pending_key for p in placed], [*head, *_per_identifier(placed)]),
        )

    async def _run(
        self,
        script: LuaScript,
        scope: LedgerScope,
        identifiers: Sequence[str],
        call: Any,
    ) -> list[Any]:
        """Run ``script`` over the identifiers: one call on a single Redis, one per hash slot
        on a cluster (together); answers in the identifiers' order."""
        if not identifiers:
            return []
        placed = [self._layout.place(scope, identifier) for identifier in identifiers]
        groups = self._redis.slot_groups([p.pending_key for p in placed])

        async def one(indexes: list[int]) -> list[Any]:
            keys, args = call([placed[i] for i in indexes])
            answer = await self._redis.run(script, keys, args, use=_USE)
            return list(answer) if isinstance(answer, list) else [answer] * len(indexes)

        answers: list[Any] = [None] * len(placed)
        results = await asyncio.gather(*(one(indexes) for indexes in groups))
        for indexes, result in zip(groups, results, strict=True):
            for index, answer in zip(indexes, result, strict=False):
                answers[index] = answer
        return answers


def _per_identifier(placed: Sequence[Placed]) -> list[str | bytes]:
    args: list[str | bytes] = []
    for p in placed:
        args += [p.base, str(p.shard), p.digest]
    return args


def _state(answer: bytes | str) -> ClaimState:
    value = answer.decode() if isinstance(answer, bytes) else answer
    if value in _STATES:
        return _STATES[value]
    return ClaimState(value)

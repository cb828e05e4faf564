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
of 64 groups on one cluster slot), a bucket is an eighth of the window (by Redis's clock),
and a meta key ``...:<bucket>:n`` (one per account on a single Redis, one per group on a
cluster) says how many shards that bucket has (fixed when the bucket opens,
from the rate the layout is sized for, so that a hash holds at most ~96 fields and Redis
keeps it in its compact listpack encoding). A bucket expires as a whole, ``window`` after it
closes: an identifier is remembered at least the window, at most an eighth longer; a claim
looks in nine buckets. Changing the window changes the bucket length, so identifiers settled
before the change are not seen after it (Stripe's own 24-hour dedup still covers the last
day). A pending claim is a key of its own, ``<prefix>meter:{...}:p:<hex digest>``, holding
``pending:<owner>`` with the lease as TTL. Memory: 25-29 bytes per settled identifier against
~210 for the key-per-identifier layout before it (``bench/ledger_sizing.py`` measures both),
for about 2.4x its Redis CPU (nine buckets to look in). A call sends each identifier's
pending key and digest; the scripts rebuild the rest from the digest.

Settled states are stored as a code ('1' for delivered; another state as its value), so the
states of :class:`ClaimState` stay the interface. Identifiers settled by the earlier layout
(``<prefix>meter:<integration>:<account>:<identifier>``) still answer on a single Redis
(``read_legacy_keys``) until they expire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from consumer.metering.ledgers.ledger_layout import GROUPS, SHARD_OF_LUA, LedgerLayout
from consumer.metering.ledgers.protocol import ClaimState, LedgerScope, Renewal
from consumer.shared_state.redis_client import LuaScript, RedisConnection

_USE: Final = "meter_ledger"
# On a cluster a batch is one call per slot it touches: at most this many at once per
# process, so the ledger never takes every connection from the rate limit and the memories.
CLUSTER_FANOUT: Final = 16
_CODES: Final = {ClaimState.DELIVERED: "1"}
_STATES: Final = {code: state for state, code in _CODES.items()}

# Shared by both scripts: where an identifier lives, rebuilt from its digest (ARGV) and the
# call's key parts: its group (digest byte 7) and its shard number (digest bytes 1-6, under
# 2^53), as ledger_layout.group_of/shard_of compute them; a bucket's shard count from the
# account's meta key (single Redis) or the group's (cluster), read once per call.
_PLACE: Final = """
local tag_start, base_end, shared_meta = ARGV[1], ARGV[2], ARGV[3]
local function base_of(digest)
  return tag_start .. (string.byte(digest, 7) % GROUPS) .. base_end
end
SHARD_OF
local function meta_of(base, bucket)
  if shared_meta ~= '' then return shared_meta .. ':' .. bucket .. ':n' end
  return base .. ':' .. bucket .. ':n'
end
""".replace("GROUPS", str(GROUPS)).replace("SHARD_OF", SHARD_OF_LUA)
# KEYS: each identifier's pending key, then (legacy on) each one's key of the earlier layout.
# ARGV: tag start, base end, shared meta base or '', pending value, lease ms, buckets to look
# back, bucket seconds, legacy 1/0, then each identifier's digest. Answers per identifier:
# 'claimed', 'pending' or the code of the state it settled in.
# Shared by the scripts that read settled identifiers (ARGV as _CLAIM's): where an identifier
# settled, in the buckets of the window, newest first: its state code and its hash, or nil.
_FIND: Final = (
    _PLACE
    + """
local now = redis.call('TIME')
local current = math.floor(tonumber(now[1]) / tonumber(ARGV[7]))
local oldest = current - tonumber(ARGV[6])
local shards = {}
local function settled(digest)
  local base, shard = base_of(digest), shard_of(digest)
  for b = current, oldest, -1 do
    local meta = meta_of(base, b)
    local n = shards[meta]
    if n == nil then
      n = tonumber(redis.call('GET', meta) or '0')
      shards[meta] = n
    end
    if n > 0 then
      local key = base .. ':' .. b .. ':' .. (shard % n)
      local state = redis.call('HGET', key, digest)
      if state then return state, key end
    end
  end
  return nil
end
local legacy = ARGV[8] == '1'
local count = #KEYS
if legacy then count = count / 2 end
"""
)
_CLAIM: Final = (
    _FIND
    + """
local states = {}
for i = 1, count do
  local state = settled(ARGV[8 + i])
  if state == nil and legacy then
    local old = redis.call('GET', KEYS[count + i])
    if old == 'delivered' then state = '1' elseif old then state = 'pending' end
  end
  if state ~= nil then
    states[i] = state
  elseif redis.call('SET', KEYS[i], ARGV[4], 'NX', 'PX', ARGV[5]) then
    states[i] = 'claimed'
  else
    states[i] = 'pending'
  end
end
return states
"""
)
# KEYS: each identifier's pending key. ARGV: tag start, base end, shared meta base or '',
# state code, shards of a new bucket, bucket seconds, window seconds, then the digests.
_SETTLE: Final = (
    _PLACE
    + """
local now = redis.call('TIME')
local seconds = tonumber(ARGV[6])
local current = math.floor(tonumber(now[1]) / seconds)
local expire_at = (current + 1) * seconds + tonumber(ARGV[7])
local shards, expiring = {}, {}
for i = 1, #KEYS do
  local digest = ARGV[7 + i]
  local base = base_of(digest)
  local meta = meta_of(base, current)
  local n = shards[meta]
  if n == nil then
    redis.call('SET', meta, ARGV[5], 'NX', 'EXAT', expire_at)
    n = tonumber(redis.call('GET', meta))
    shards[meta] = n
  end
  local key = base .. ':' .. current .. ':' .. (shard_of(digest) % n)
  redis.call('HSET', key, digest, ARGV[4])
  if not expiring[key] then
    redis.call('EXPIREAT', key, expire_at)
    expiring[key] = true
  end
  redis.call('DEL', KEYS[i])
end
return #KEYS
"""
)
_RELEASE: Final = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key); released = released + 1 end
end
return released
"""
# KEYS: each identifier's pending key. ARGV: this owner's pending value, lease ms. A full
# lease again for each claim still this owner's (compare and pexpire, atomic); answers 1 for
# those, 2 for a claim another owner holds now, 0 for one gone (expired, or settled).
_RENEW: Final = """
local held = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    held[i] = 1
  elseif owner then
    held[i] = 2
  else
    held[i] = 0
  end
end
return held
"""
_RENEWALS: Final = {1: Renewal.HELD, 2: Renewal.TAKEN}
# KEYS and ARGV as _CLAIM's. Answers per identifier: its settled state code, or '' when the
# window has none (a pending claim is not settled).
_READ: Final = (
    _FIND
    + """
local states = {}
for i = 1, count do
  local state = settled(ARGV[8 + i])
  if state == nil and legacy and redis.call('GET', KEYS[count + i]) == 'delivered' then
    state = '1'
  end
  states[i] = state or ''
end
return states
"""
)
# KEYS and ARGV as _CLAIM's: drop each identifier settled `delivered` (Stripe rejected it
# later, so a corrected resend must be sent); other states stay.
_FORGET: Final = (
    _FIND
    + """
for i = 1, count do
  local state, key = settled(ARGV[8 + i])
  if state == '1' then redis.call('HDEL', key, ARGV[8 + i]) end
  if legacy and redis.call('GET', KEYS[count + i]) == 'delivered' then
    redis.call('DEL', KEYS[count + i])
  end
end
return count
"""
)


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
        self._renew = connection.script(_RENEW)
        self._read = connection.script(_READ)
        self._forget = connection.script(_FORGET)
        self._fanout = asyncio.Semaphore(CLUSTER_FANOUT)

    def _places(self, scope: LedgerScope) -> list[str]:
        layout = self._layout
        shared = "" if self._redis.clustered else layout.shared_meta_base(scope)
        return [layout.tag_start(scope), layout.base_end(), shared]

    async def claim(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[ClaimState]:
        answers = await self._looked_up(self._claim, scope, identifiers)
        return [_state(answer) for answer in answers]

    async def _looked_up(
        self, script: LuaScript, scope: LedgerScope, identifiers: Sequence[str]
    ) -> list[Any]:
        """Run a script that finds identifiers in the window (_FIND's KEYS and ARGV)."""
        layout = self._layout
        head: list[str | bytes] = [*self._places(scope), self._pending, self._lease_ms]
        head += [str(layout.lookback_buckets), str(layout.bucket_seconds)]
        head.append("1" if self._legacy else "0")
        legacy = [layout.legacy_key(scope, i) for i in identifiers] if self._legacy else None

        def call(indexes: list[int], keys: list[str], digests: list[bytes]) -> Any:
            if legacy is not None:
                keys = keys + [legacy[i] for i in indexes]
            return keys, [*head, *digests]

        return await self._run(script, scope, identifiers, call)

    async def mark_delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        await self._settled(scope, identifiers, ClaimState.DELIVERED)

    async def release(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        pending = [self._pending]
        await self._run(self._release, scope, identifiers, lambda _, k, _d: (k, pending))

    async def renew(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[Renewal]:
        owned = [self._pending, self._lease_ms]
        answers = await self._run(self._renew, scope, identifiers, lambda _, k, _d: (k, owned))
        return [_RENEWALS.get(int(answer), Renewal.GONE) for answer in answers]

    async def delivered(self, scope: LedgerScope, identifiers: Sequence[str]) -> list[bool]:
        answers = await self._looked_up(self._read, scope, identifiers)
        return [_state(answer) is ClaimState.DELIVERED if answer else False for answer in answers]

    async def forget(self, scope: LedgerScope, identifiers: Sequence[str]) -> None:
        await self._looked_up(self._forget, scope, identifiers)

    async def close(self) -> None:
        return None  # the connection is closed by its owner (it serves every use)

    async def _settled(
        self, scope: LedgerScope, identifiers: Sequence[str], state: ClaimState
    ) -> None:
        """Record identifiers as settled in ``state`` (for the window) and drop their claims."""
        layout = self._layout
        head: list[str | bytes] = [*self._places(scope), _CODES.get(state, state.value)]
        head += [str(layout.new_bucket_shards), str(layout.bucket_seconds)]
        head.append(str(layout.window_seconds))
        await self._run(self._settle, scope, identifiers, lambda _, k, d: (k, [*head, *d]))

    async def _run(
        self, script: LuaScript, scope: LedgerScope, identifiers: Sequence[str], call: Any
    ) -> list[Any]:
        """Run ``script`` over the identifiers: one call on a single Redis, one per hash slot
        on a cluster (together); answers in the identifiers' order. ``call(indexes, pending
        keys, digests)`` gives a call's KEYS and ARGV."""
        if not identifiers:
            return []
        start = self._layout.tag_start(scope)
        placed = [self._layout.pending(start, identifier) for identifier in identifiers]
        pending = [key for key, _ in placed]
        groups = self._redis.slot_groups(pending)

        async def one(indexes: list[int]) -> list[Any]:
            keys, args = call(
                indexes, [pending[i] for i in indexes], [placed[i][1] for i in indexes]
            )
            answer = await self._redis.run(script, keys, args, use=_USE)
            return list(answer) if isinstance(answer, list) else [answer] * len(indexes)

        async def bounded(indexes: list[int]) -> list[Any]:
            async with self._fanout:
                return await one(indexes)

        if len(groups) == 1:
            return await one(groups[0])
        answers: list[Any] = [None] * len(placed)
        results = await asyncio.gather(*(bounded(indexes) for indexes in groups))
        for indexes, result in zip(groups, results, strict=True):
            for index, answer in zip(indexes, result, strict=False):
                answers[index] = answer
        return answers


def _state(answer: bytes | str) -> ClaimState:
    value = answer.decode() if isinstance(answer, bytes) else answer
    if value in _STATES:
        return _STATES[value]
    return ClaimState(value)

"""What the service delivered, as reconciliation needs it: per (event name, customer, hour of
the event's timestamp) the sum of the values Stripe accepted, and the same for what Stripe
later rejected (by code) or was cancelled. Aggregates, not one row per event: memory grows
with customers x hours, not with events. To move a rejected event's value from `delivered`
to `rejected`, each delivered event's (event name, customer, hour, value) is kept for
``DETAIL_SECONDS`` (Stripe reports errors within minutes; 48 hours is the margin).

Redis keys (own keys, under the prefix): ``meter-sums:<integration>:<account>:<hour>``
(hash: ``<event name> US <customer>`` -> sum), ``meter-rejected:<integration>:<account>:<hour>``
(hash: ``<event name> US <customer> US <code>`` -> sum; US is the unit separator, 0x1f),
``meter-usage:<integration>:<account>:<identifier>`` (the detail), all expiring; the sums
after ``SUMS_SECONDS`` (35 days). On a Redis Cluster ``<integration>:<account>`` is a hash
tag, ``{<integration>:<account>}``: a script's keys (an event's detail and its hour's sums)
must share a slot, so an account's usage keys live on one slot (a cluster is new: no keys of
the untagged names to carry over).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Final, Protocol

from consumer.metering.events import MeterEvent
from consumer.metering.ledgers.ledger_layout import (
    SHARD_OF_LUA,
    bucket_seconds,
    digest_of,
    shards_for,
)
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.shared_state.redis_client import RedisConnection

DETAIL_SECONDS: Final = 48 * 3600.0
SUMS_SECONDS: Final = 35 * 86_400.0
_USE: Final = "meter_usage"
SEP: Final = "\x1f"  # no event name, customer id or code holds a control character
Sums = dict[tuple[str, ...], float]  # (event name, customer[, code]) -> sum


def hour_of(event: MeterEvent, now: float) -> int:
    moment = event.timestamp if event.timestamp is not None else int(now)
    return moment - moment % 3600


def detail_of(event: MeterEvent, now: float) -> str:
    customer = event.payload.get("stripe_customer_id", "")
    value = event.payload.get("value", "1")
    return SEP.join((event.event_name, customer, str(hour_of(event, now)), value))


class UsageBook(Protocol):
    async def delivered(self, scope: LedgerScope, events: Sequence[MeterEvent]) -> None: ...

    async def rejected(self, scope: LedgerScope, verdicts: Sequence[tuple[str, str]]) -> None:
        """(identifier, code): move each known event's value from delivered to rejected."""

    async def sums(self, scope: LedgerScope, hour: int) -> tuple[Sums, Sums]:
        """(delivered, rejected) of one hour; rejected holds each (event name, customer,
        code)'s value, and under (event name, customer, code, "n") how many events."""


class MemoryUsageBook:
    """This process only: bounded detail (oldest first), sums kept for the window."""

    def __init__(self, max_details: int = 200_000) -> None:
        self._max = max_details
        self._details: OrderedDict[str, str] = OrderedDict()
        self._delivered: dict[tuple[LedgerScope, int], Sums] = defaultdict(dict)
        self._rejected: dict[tuple[LedgerScope, int], Sums] = defaultdict(dict)

    async def delivered(self, scope: LedgerScope, events: Sequence[MeterEvent]) -> None:
        now = time.time()
        for event in events:
            detail = detail_of(event, now)
            name, customer, hour, value = detail.split(SEP)
            sums = self._delivered[(scope, int(hour))]
            sums[(name, customer)] = sums.get((name, customer), 0.0) + float(value)
            self._details[scope.key(event.identifier)] = detail
        while len(self._details) > self._max:
            self._details.popitem(last=False)

    async def rejected(self, scope: LedgerScope, verdicts: Sequence[tuple[str, str]]) -> None:
        for identifier, code in verdicts:
            detail = self._details.pop(scope.key(identifier), None)
            if detail is not None:
                name, customer, hour, value = detail.split(SEP)
                sums = self._rejected[(scope, int(hour))]
                sums[(name, customer, code)] = sums.get((name, customer, code), 0.0) + float(value)
                counted = (name, customer, code, "n")
                sums[counted] = sums.get(counted, 0.0) + 1

    async def sums(self, scope: LedgerScope, hour: int) -> tuple[Sums, Sums]:
        return dict(self._delivered.get((scope, hour), {})), dict(
            self._rejected.get((scope, hour), {})
        )


# The detail store: each delivered event's detail for DETAIL_SECONDS, as a field (the
# identifier's 16-byte digest) of a small hash in a time bucket, like the ledger's settled
# identifiers (a key per identifier cost ~150 bytes more each, and 3 commands per event):
# ``<details base>:<bucket>:<shard>`` with the bucket's shard count in ``...:<bucket>:n``,
# fixed when the bucket opens; a bucket expires as a whole DETAIL_SECONDS after it closes.
_DETAIL_BUCKET: Final = """
SHARD_OF
local base, seconds = KEYS[1], tonumber(ARGV[1])
local now = redis.call('TIME')
local current = math.floor(tonumber(now[1]) / seconds)
local function shards_in(bucket)
  return tonumber(redis.call('GET', base .. ':' .. bucket .. ':n') or '0')
end
""".replace("SHARD_OF", SHARD_OF_LUA)
# KEYS: details base, sums prefix. ARGV: bucket seconds, shards of a new bucket, detail
# seconds, sums ms, n, then n digests, n details, then (hour, field, amount) per sum to add.
_DELIVERED: Final = (
    _DETAIL_BUCKET
    + """
local expire_at = (current + 1) * seconds + tonumber(ARGV[3])
local meta = base .. ':' .. current .. ':n'
redis.call('SET', meta, ARGV[2], 'NX', 'EXAT', expire_at)
local shards, n, expiring = shards_in(current), tonumber(ARGV[5]), {}
for i = 1, n do
  local digest = ARGV[5 + i]
  local key = base .. ':' .. current .. ':' .. (shard_of(digest) % shards)
  redis.call('HSET', key, digest, ARGV[5 + n + i])
  if not expiring[key] then
    redis.call('EXPIREAT', key, expire_at)
    expiring[key] = true
  end
end
for j = 6 + 2 * n, #ARGV, 3 do
  local sums = KEYS[2] .. ARGV[j]
  redis.call('HINCRBYFLOAT', sums, ARGV[j + 1], ARGV[j + 2])
  redis.call('PEXPIRE', sums, ARGV[4])
end
return n
"""
)
# KEYS: details base, rejected sums prefix. ARGV: bucket seconds, buckets to look back,
# sums ms, then each identifier's digest and its code (pairs). A detail found is moved once.
_REJECTED: Final = (
    _DETAIL_BUCKET
    + """
local moved = 0
for j = 4, #ARGV, 2 do
  local digest = ARGV[j]
  for b = current, current - tonumber(ARGV[2]), -1 do
    local shards = shards_in(b)
    local key = base .. ':' .. b .. ':' .. (shard_of(digest) % math.max(shards, 1))
    local detail = shards > 0 and redis.call('HGET', key, digest)
    if detail then
      local name, customer, hour, value = string.match(detail, '^(.*)\\31(.*)\\31(%d+)\\31(.*)$')
      local sums = KEYS[2] .. hour
      local field = name .. '\\31' .. customer .. '\\31' .. ARGV[j + 1]
      redis.call('HINCRBYFLOAT', sums, field, value)
      redis.call('HINCRBYFLOAT', sums, field .. '\\31n', 1)
      redis.call('PEXPIRE', sums, ARGV[3])
      redis.call('HDEL', key, digest)
      moved = moved + 1
      break
    end
  end
end
return moved
"""
)


class RedisUsageBook:
    """Shared by every replica; an account's keys share one slot on a Redis Cluster. Sums
    are added once per (hour, event name, customer) of a batch, not once per event."""

    def __init__(self, connection: RedisConnection, *, events_per_second: float = 1_000.0) -> None:
        self._redis = connection
        self._prefix = connection.prefix
        self._tagged = connection.clustered
        self._delivered = connection.script(_DELIVERED)
        self._rejected = connection.script(_REJECTED)
        self._bucket_seconds = bucket_seconds(DETAIL_SECONDS)
        self._lookback = math.ceil(DETAIL_SECONDS / self._bucket_seconds)
        self._new_shards = shards_for(events_per_second, self._bucket_seconds, groups=1)

    def _scope_prefix(self, kind: str, scope: LedgerScope) -> str:
        account = f"{scope.integration}:{scope.stripe_account or '-'}"
        return (
            f"{self._prefix}{kind}:{{{account}}}:"
            if self._tagged
            else f"{self._prefix}{kind}:{account}:"
        )

    def _details_base(self, scope: LedgerScope) -> str:
        return f"{self._scope_prefix('meter-usage', scope)}{self._bucket_seconds}"

    async def delivered(self, scope: LedgerScope, events: Sequence[MeterEvent]) -> None:
        if not events:
            return
        now = time.time()
        details = [detail_of(e, now) for e in events]
        added: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for detail in details:
            name, customer, hour, value = detail.split(SEP)
            added[(hour, f"{name}{SEP}{customer}")] += Decimal(value)
        keys = [self._details_base(scope), self._scope_prefix("meter-sums", scope)]
        head = [str(self._bucket_seconds), str(self._new_shards), str(int(DETAIL_SECONDS))]
        head += [str(int(SUMS_SECONDS * 1000)), str(len(events))]
        sums = [part for (hour, field), v in added.items() for part in (hour, field, f"{v:f}")]
        digests = [digest_of(e.identifier) for e in events]
        await self._redis.run(self._delivered, keys, [*head, *digests, *details, *sums], use=_USE)

    async def rejected(self, scope: LedgerScope, verdicts: Sequence[tuple[str, str]]) -> None:
        if not verdicts:
            return
        keys = [self._details_base(scope), self._scope_prefix("meter-rejected", scope)]
        args: list[str | bytes] = [str(self._bucket_seconds), str(self._lookback)]
        args.append(str(int(SUMS_SECONDS * 1000)))
        for identifier, code in verdicts:
            args += [digest_of(identifier), code]
        await self._redis.run(self._rejected, keys, args, use=_USE)

    async def sums(self, scope: LedgerScope, hour: int) -> tuple[Sums, Sums]:
        delivered = await self._redis.hash_all(
            f"{self._scope_prefix('meter-sums', scope)}{hour}", use=_USE
        )
        rejected = await self._redis.hash_all(
            f"{self._scope_prefix('meter-rejected', scope)}{hour}", use=_USE
        )
        return (
            {tuple(k.split(SEP)): float(v) for k, v in delivered.items()},
            {tuple(k.split(SEP)): float(v) for k, v in rejected.items()},
        )


def usage_book(redis: RedisConnection | None, *, events_per_second: float) -> UsageBook:
    if redis is None:
        return MemoryUsageBook()
    return RedisUsageBook(redis, events_per_second=events_per_second)

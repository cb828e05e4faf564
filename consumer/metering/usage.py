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

import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Final, Protocol

from consumer.metering.events import MeterEvent
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


_DELIVERED: Final = """
-- KEYS: detail keys..., then the sums keys (one per event, aligned); ARGV: details, ttls
local n = #ARGV - 2
for i = 1, n do
  local detail = ARGV[i]
  redis.call('SET', KEYS[i], detail, 'PX', ARGV[n + 1])
  local name, customer, hour, value = string.match(detail, '^(.*)\\31(.*)\\31(%d+)\\31(.*)$')
  redis.call('HINCRBYFLOAT', KEYS[n + i], name .. '\\31' .. customer, value)
  redis.call('PEXPIRE', KEYS[n + i], ARGV[n + 2])
end
return n
"""
_REJECTED: Final = """
-- KEYS: detail keys; ARGV[1]: prefix of the rejected sums keys, ARGV[2]: ttl, then codes
for i, key in ipairs(KEYS) do
  local detail = redis.call('GET', key)
  if detail then
    local name, customer, hour, value = string.match(detail, '^(.*)\\31(.*)\\31(%d+)\\31(.*)$')
    local sums = ARGV[1] .. hour
    local field = name .. '\\31' .. customer .. '\\31' .. ARGV[i + 2]
    redis.call('HINCRBYFLOAT', sums, field, value)
    redis.call('HINCRBYFLOAT', sums, field .. '\\31n', 1)
    redis.call('PEXPIRE', sums, ARGV[2])
    redis.call('DEL', key)
  end
end
return #KEYS
"""


class RedisUsageBook:
    """Shared by every replica; on a Redis Cluster an account's keys share one slot."""

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection
        self._prefix = connection.prefix
        self._tagged = connection.clustered
        self._delivered = connection.script(_DELIVERED)
        self._rejected = connection.script(_REJECTED)

    def _scope_prefix(self, kind: str, scope: LedgerScope) -> str:
        account = f"{scope.integration}:{scope.stripe_account or '-'}"
        return (
            f"{self._prefix}{kind}:{{{account}}}:"
            if self._tagged
            else f"{self._prefix}{kind}:{account}:"
        )

    def _detail_key(self, scope: LedgerScope, identifier: str) -> str:
        return f"{self._scope_prefix('meter-usage', scope)}{identifier}"

    async def delivered(self, scope: LedgerScope, events: Sequence[MeterEvent]) -> None:
        if not events:
            return
        now = time.time()
        sums = self._scope_prefix("meter-sums", scope)
        details = [detail_of(e, now) for e in events]
        keys = [self._detail_key(scope, e.identifier) for e in events]
        keys += [f"{sums}{hour_of(e, now)}" for e in events]
        ttls = [str(int(DETAIL_SECONDS * 1000)), str(int(SUMS_SECONDS * 1000))]
        await self._redis.run(self._delivered, keys, [*details, *ttls], use=_USE)

    async def rejected(self, scope: LedgerScope, verdicts: Sequence[tuple[str, str]]) -> None:
        if not verdicts:
            return
        keys = [self._detail_key(scope, i) for i, _ in verdicts]
        args = [
            self._scope_prefix("meter-rejected", scope),
            str(int(SUMS_SECONDS * 1000)),
            *(code for _, code in verdicts),
        ]
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


def usage_book(redis: RedisConnection | None) -> UsageBook:
    return RedisUsageBook(redis) if redis is not None else MemoryUsageBook()

"""The reconciliation sums in real Redis, a single one and a three-primary cluster: what was
delivered adds up per (event name, customer, hour), and a rejection moves its value over."""

from __future__ import annotations

import pytest

from consumer.metering.events import MeterEvent
from consumer.metering.usage import RedisUsageBook, hour_of
from consumer.shared_state.redis_client import RedisConnection
from tests.integration.test_ledger_layout import SCOPE, Connect, connect, redis_url
from tests.unit.fakes import settings

pytestmark = pytest.mark.integration
__all__ = ["connect", "redis_url"]  # fixtures, used by name
HOUR = 1_764_892_800  # a whole hour (UTC)


def event(identifier: str, customer: str, value: int) -> MeterEvent:
    credential = settings().credentials["default"]
    payload = {"stripe_customer_id": customer, "value": str(value)}
    return MeterEvent(SCOPE, credential, "api_requests", identifier, payload, HOUR + 60, "k")


async def test_delivered_and_rejected_sums_add_up(connect: Connect) -> None:
    """60 events over two customers (their keys across the cluster's slots) sum per
    customer; a rejected one's value and count go to its code (delivered keeps it)."""
    book = RedisUsageBook(connect())
    events = [event(f"u-{i}", f"cus_{i % 2}", 1 + i % 3) for i in range(60)]
    assert hour_of(events[0], 0) == HOUR
    await book.delivered(SCOPE, events[:30])
    await book.delivered(SCOPE, events[30:])
    await book.rejected(SCOPE, [("u-1", "customer_not_found")])
    delivered, rejected = await book.sums(SCOPE, HOUR)
    expected = {c: sum(1 + i % 3 for i in range(60) if i % 2 == c) for c in (0, 1)}
    assert delivered == {
        ("api_requests", "cus_0"): expected[0],
        ("api_requests", "cus_1"): expected[1],
    }
    assert rejected == {
        ("api_requests", "cus_1", "customer_not_found"): 2,
        ("api_requests", "cus_1", "customer_not_found", "n"): 1,
    }


# The current detail bucket of a details base (ARGV[1]): each shard's key, TTL, encoding
# and number of fields, by the bucket's shard count (no KEYS: a shared Redis is large).
_BUCKET = """
local current = math.floor(tonumber(redis.call('TIME')[1]) / 21600)
local bucket = ARGV[1] .. ':' .. current
local shards = tonumber(redis.call('GET', bucket .. ':n') or '0')
local found = {}
for shard = 0, shards - 1 do
  local key = bucket .. ':' .. shard
  found[#found + 1] = {key, redis.call('TTL', key), redis.call('OBJECT', 'ENCODING', key),
                       redis.call('HLEN', key)}
end
return found
"""
# Moves the current detail bucket (its hashes and shard count) `ARGV[2]` buckets back.
_AGE = """
local current = math.floor(tonumber(redis.call('TIME')[1]) / 21600)
local from, to = ARGV[1] .. ':' .. current, ARGV[1] .. ':' .. (current - tonumber(ARGV[2]))
for shard = 0, tonumber(redis.call('GET', from .. ':n')) - 1 do
  if redis.call('EXISTS', from .. ':' .. shard) == 1 then
    redis.call('RENAME', from .. ':' .. shard, to .. ':' .. shard)
  end
end
redis.call('RENAME', from .. ':n', to .. ':n')
return 1
"""


def slot_key(connection: RedisConnection) -> str:
    """A key in the slot of SCOPE's usage keys (a cluster routes the script by it)."""
    tag = "{default:acct_1}" if connection.clustered else "default:acct_1"
    return f"{connection.prefix}meter-usage:{tag}:21600"


async def test_details_are_fields_of_a_few_compact_hashes(connect: Connect) -> None:
    """500 delivered events are 500 fields of the bucket's 8 listpack hashes, each expiring
    after the 48 hours; not a key of their own per event as before."""
    connection = connect()
    book = RedisUsageBook(connection, events_per_second=0.035)  # 8 shards a bucket
    events = [event(f"u-{i}", f"cus_{i % 7}", 1) for i in range(500)]
    for start in range(0, 500, 100):
        await book.delivered(SCOPE, events[start : start + 100])
    base = slot_key(connection)
    shards = await connection.run(connection.script(_BUCKET), [base], [base], use="t")
    assert len(shards) == 8
    assert sum(fields for *_, fields in shards) == 500
    assert all(ttl > 48 * 3600 and encoding == b"listpack" for _, ttl, encoding, _ in shards)
    before = f"{connection.prefix}meter-usage:default:acct_1:u-0"  # the key-per-event layout
    assert await connection.get_many([before], use="t") == [None]
    delivered, _ = await book.sums(SCOPE, HOUR)
    assert sum(delivered.values()) == 500


async def test_a_rejection_finds_its_detail_in_an_older_bucket_once(connect: Connect) -> None:
    """A detail written 3 buckets (18 h) ago is found and moved; a second verdict for the
    same identifier and one for an identifier never delivered move nothing."""
    connection = connect()
    book = RedisUsageBook(connection)
    await book.delivered(SCOPE, [event("u-1", "cus_a", 5), event("u-2", "cus_a", 7)])
    await connection.run(connection.script(_AGE), [slot_key(connection)],
                         [slot_key(connection), "3"], use="t")  # fmt: skip
    await book.rejected(SCOPE, [("u-1", "customer_not_found"), ("u-9", "customer_not_found")])
    await book.rejected(SCOPE, [("u-1", "customer_not_found")])
    delivered, rejected = await book.sums(SCOPE, HOUR)
    assert delivered == {("api_requests", "cus_a"): 12}
    assert rejected == {
        ("api_requests", "cus_a", "customer_not_found"): 5,
        ("api_requests", "cus_a", "customer_not_found", "n"): 1,
    }

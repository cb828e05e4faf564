"""The Redis ledger's compact layout against real Redis, a single one and a three-primary
cluster: exactly-once claims, releases and leases in the bucketed hashes, states in the
batch's order (a batch spans many cluster slots), compact encodings, and the identifiers the
key-per-identifier layout settled still answering (single Redis)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from consumer.metering.ledgers.ledger_layout import LedgerLayout
from consumer.metering.ledgers.protocol import ClaimState, LedgerScope
from consumer.metering.ledgers.redis import RedisIdentifierLedger
from consumer.observability.metrics import ServiceMetrics
from consumer.shared_state.redis_client import RedisConnection

pytestmark = pytest.mark.integration
SCOPE = LedgerScope("default", "acct_1")
CLAIMED, DELIVERED, PENDING = ClaimState.CLAIMED, ClaimState.DELIVERED, ClaimState.PENDING
Connect = Callable[[], RedisConnection]


@pytest.fixture(params=["single", "cluster"])
def redis_url(request: pytest.FixtureRequest, stack: dict[str, str]) -> tuple[str, bool]:
    """(URL, whether a cluster): the stack's Redis, then its Redis Cluster."""
    if request.param == "single":
        return stack["REDIS_URL"], False
    return request.getfixturevalue("redis_cluster_url"), True


@pytest_asyncio.fixture
async def connect(redis_url: tuple[str, bool]) -> AsyncIterator[Connect]:
    """Connections as separate replicas hold them, on a key prefix private to this test."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    opened: list[RedisConnection] = []
    url, cluster = redis_url

    def make() -> RedisConnection:
        metrics = ServiceMetrics(CollectorRegistry())
        opened.append(RedisConnection(url, metrics, prefix=prefix, cluster=cluster))
        return opened[-1]

    yield make
    for connection in opened:
        await connection.close()


def ledger(connection: RedisConnection, owner: str, lease: float = 30) -> RedisIdentifierLedger:
    return RedisIdentifierLedger(
        connection, window_seconds=35 * 86_400, lease_seconds=lease, owner=owner,
        events_per_second=5,
    )  # fmt: skip


async def test_a_batch_across_many_groups_answers_in_its_order(connect: Connect) -> None:
    """300 identifiers (spread over the 64 groups) claim, settle and answer per identifier,
    in the order given, for another replica too."""
    one, two = ledger(connect(), "one"), ledger(connect(), "two")
    ids = [f"evt-{i}" for i in range(300)]
    assert await one.claim(SCOPE, ids) == [CLAIMED] * 300
    await one.mark_delivered(SCOPE, ids[::2])
    await one.release(SCOPE, ids[1::3])
    expected = [DELIVERED if i % 2 == 0 else CLAIMED if i % 3 == 1 else PENDING for i in range(300)]
    assert await two.claim(SCOPE, ids) == expected


async def test_release_frees_only_the_owners_claims(connect: Connect) -> None:
    """A replica's release does not free another replica's claim."""
    one, two = ledger(connect(), "one"), ledger(connect(), "two")
    assert await one.claim(SCOPE, ["a"]) == [CLAIMED]
    await two.release(SCOPE, ["a"])
    assert await two.claim(SCOPE, ["a"]) == [PENDING]
    await one.release(SCOPE, ["a"])
    assert await two.claim(SCOPE, ["a"]) == [CLAIMED]


async def test_a_dead_owners_lease_expires(connect: Connect) -> None:
    """A claim whose owner never settles it is claimable again once its lease ran out."""
    dead, alive = ledger(connect(), "dead", lease=1), ledger(connect(), "alive")
    assert await dead.claim(SCOPE, ["a"]) == [CLAIMED]
    assert await alive.claim(SCOPE, ["a"]) == [PENDING]
    deadline = time.monotonic() + 10
    while (state := await alive.claim(SCOPE, ["a"])) != [CLAIMED]:
        assert state == [PENDING]
        assert time.monotonic() < deadline, "the lease never expired"
        await asyncio.sleep(0.1)


async def test_scopes_do_not_share_identifiers(connect: Connect) -> None:
    """The same identifier in another Stripe account is another event."""
    one = ledger(connect(), "one")
    assert await one.claim(SCOPE, ["a"]) == [CLAIMED]
    await one.mark_delivered(SCOPE, ["a"])
    assert await one.claim(LedgerScope("default", None), ["a"]) == [CLAIMED]


async def test_settled_identifiers_sit_in_compact_hashes_that_expire(connect: Connect) -> None:
    """Settled identifiers are fields of listpack-encoded hashes with the window (plus at
    most a bucket) as TTL, not keys of their own."""
    connection = connect()
    one = ledger(connection, "one")
    ids = [str(uuid.uuid4()) for _ in range(2_000)]
    for start in range(0, 2_000, 100):
        await one.claim(SCOPE, ids[start : start + 100])
        await one.mark_delivered(SCOPE, ids[start : start + 100])
    layout = LedgerLayout(f"{connection.prefix}meter:", window_seconds=35 * 86_400,
                          events_per_second=5)  # fmt: skip
    inspect = connection.script(
        """
        local bucket = ARGV[1] .. ':' .. math.floor(tonumber(redis.call('TIME')[1]) / ARGV[2])
        local meta = ARGV[5] .. ':' .. math.floor(tonumber(redis.call('TIME')[1]) / ARGV[2])
        local shards = tonumber(redis.call('GET', meta .. ':n'))
        local key = bucket .. ':' .. (tonumber(ARGV[3]) % shards)
        return {redis.call('OBJECT', 'ENCODING', key), redis.call('TTL', key),
                redis.call('HLEN', key), redis.call('EXISTS', ARGV[4])}
        """
    )
    placed = layout.place(SCOPE, ids[0])
    # A single Redis keeps the shard counts once per account; a cluster per group.
    meta = placed.base if connection.clustered else layout.shared_meta_base(SCOPE)
    args: list[str | bytes | int] = [placed.base, layout.bucket_seconds, placed.shard]
    args += [placed.pending_key, meta]
    encoding, ttl, fields, pending = await connection.run(
        inspect, [placed.pending_key], args, use="t"
    )
    assert encoding == b"listpack"
    assert 35 * 86_400 < ttl <= 35 * 86_400 * 9 // 8
    assert 1 <= fields <= 128
    assert pending == 0  # the claim went when the identifier settled


@pytest.mark.parametrize("redis_url", ["single"], indirect=True)
async def test_identifiers_the_earlier_layout_settled_still_answer(connect: Connect) -> None:
    """A key of the key-per-identifier layout ('delivered', or a claim) is honoured."""
    connection = connect()
    old = f"{connection.prefix}meter:{SCOPE.key('old-delivered')}"
    await connection.put(old, b"delivered", ttl_seconds=60, use="t")
    held = f"{connection.prefix}meter:{SCOPE.key('old-pending')}"
    await connection.put(held, b"pending:old-replica", ttl_seconds=60, use="t")
    states = await ledger(connection, "new").claim(SCOPE, ["old-delivered", "old-pending", "x"])
    assert states == [DELIVERED, PENDING, CLAIMED]


async def test_delivered_reads_and_forget_drops_only_delivered(connect: Connect) -> None:
    """Stripe's later rejection: `delivered` says which identifiers settled delivered (a
    claim is not), `forget` drops those so a corrected resend is claimable again, and leaves
    a pending claim alone; across the batch's many cluster slots."""
    first, second = ledger(connect(), "a"), ledger(connect(), "b")
    sent = [f"sent-{i}" for i in range(150)]
    assert await first.claim(SCOPE, [*sent, "held"]) == [CLAIMED] * 151
    await first.mark_delivered(SCOPE, sent)
    assert await second.delivered(SCOPE, [*sent, "held", "never"]) == [True] * 150 + [False] * 2
    rejected = sent[::3]
    await second.forget(SCOPE, [*rejected, "held"])
    assert await second.delivered(SCOPE, sent) == [i % 3 != 0 for i in range(150)]
    states = await second.claim(SCOPE, [*sent, "held"])
    assert states == [CLAIMED if i % 3 == 0 else DELIVERED for i in range(150)] + [PENDING]


async def test_forget_drops_a_delivered_key_of_the_earlier_layout(stack: dict[str, str]) -> None:
    """An identifier the key-per-identifier layout settled is forgotten too (single Redis,
    where that layout was read)."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    connection = RedisConnection(
        stack["REDIS_URL"], ServiceMetrics(CollectorRegistry()), prefix=prefix
    )
    try:
        old = f"{prefix}meter:{SCOPE.key('old-delivered')}"
        await connection.put(old, b"delivered", ttl_seconds=60, use="t")
        book = ledger(connection, "new")
        assert await book.delivered(SCOPE, ["old-delivered"]) == [True]
        await book.forget(SCOPE, ["old-delivered"])
        assert await book.claim(SCOPE, ["old-delivered"]) == [CLAIMED]
    finally:
        await connection.close()

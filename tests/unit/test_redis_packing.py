"""The Redis connection packs commands with hiredis: the bytes on the wire are exactly those
redis-py's own packing writes, for every kind of argument the service sends."""

from __future__ import annotations

import os

import redis.asyncio as redis

from consumer.shared_state.redis_client import HiredisPackedConnection, _single_client

COMMANDS: list[tuple[str | bytes | int | float, ...]] = [
    ("EVALSHA", "a" * 40, 2, "k:{default:-}:1", "k2", *[os.urandom(16) for _ in range(50)]),
    ("HINCRBYFLOAT", "sums", "api_requests\x1fcus_1", "0.000000000001"),
    ("SET", "kéy", "välue ✓", "PX", 172_800_000),
    ("CLIENT SETNAME", "stripe-consumer"),
    ("INCRBYFLOAT", "x", 1.5),
    ("GET", b"binary\x00key"),
]


def test_hiredis_packing_writes_what_redis_py_writes() -> None:
    """Each command packs to the same bytes as redis-py's Python packing."""
    ours, theirs = HiredisPackedConnection(), redis.Connection()
    for command in COMMANDS:
        assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))


def test_the_single_redis_client_uses_it_but_tls_keeps_its_own() -> None:
    """redis:// connections pack with hiredis; rediss:// keeps redis-py's TLS connection."""
    plain = _single_client("redis://127.0.0.1:1/0", 1.0)
    tls = _single_client("rediss://127.0.0.1:1/0", 1.0)
    assert plain.connection_pool.connection_class is HiredisPackedConnection
    assert tls.connection_pool.connection_class is redis.SSLConnection

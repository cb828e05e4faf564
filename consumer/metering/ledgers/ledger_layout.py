"""Where the Redis ledger keeps an identifier (``redis.py``'s docstring says why this way):
its 16-byte digest, its hash-tagged group, its shard number, its pending key, and the sizes
of the time buckets. Pure computation, no Redis."""

from __future__ import annotations

import hashlib
import math
from typing import Final

import msgspec

from consumer.metering.ledgers.protocol import LedgerScope

DIGEST_BYTES: Final = 16  # 2^128: no two of 30 billion identifiers share one (p ~ 1e-18)
# Hash-tag groups per account: how far one account spreads over a cluster's slots, and the
# most script calls a batch of 100 takes there (about 51 at 64 groups).
GROUPS: Final = 64
BUCKETS_PER_WINDOW: Final = 8  # settled identifiers expire a bucket (window / 8) at a time
FIELDS_PER_HASH: Final = 96  # below Redis's hash-max-listpack-entries (128): compact hashes
MAX_SHARDS: Final = 1 << 24


class Placed(msgspec.Struct, frozen=True):
    identifier: str
    digest: bytes  # the field of the settled identifier in its shard's hash
    base: str  # <prefix>meter:{<integration>:<account>:<group>}:<bucket seconds>
    shard: int  # its shard in a bucket is shard % (the bucket's shard count)
    pending_key: str


class LedgerLayout:
    """Names for one prefix and window. The Lua scripts rebuild an identifier's base and shard
    from its digest (``group_of``, ``shard_of``), so a call sends one digest per identifier."""

    def __init__(self, prefix: str, *, window_seconds: float, events_per_second: float) -> None:
        self.prefix = prefix
        self.window_seconds = math.ceil(window_seconds)
        self.bucket_seconds = bucket_seconds(window_seconds)
        # The buckets a claim looks in: the current one and those the window reaches back to.
        self.lookback_buckets = math.ceil(self.window_seconds / self.bucket_seconds)
        self.new_bucket_shards = shards_for(events_per_second, self.bucket_seconds)

    def tag_start(self, scope: LedgerScope) -> str:
        """A key's start up to its group: ``<prefix>{<integration>:<account>:``."""
        return f"{self.prefix}{{{scope.integration}:{scope.stripe_account or '-'}:"

    def base_end(self) -> str:
        """After the group: the tag's end and the bucket length (buckets of another window
        are other keys)."""
        return f"}}:{self.bucket_seconds}"

    def shared_meta_base(self, scope: LedgerScope) -> str:
        """Where a single Redis keeps each bucket's shard count, once per account (a cluster
        keeps it per group, beside the group's keys)."""
        account = scope.stripe_account or "-"
        return f"{self.prefix}{{{scope.integration}:{account}}}:{self.bucket_seconds}"

    def pending(self, tag_start: str, identifier: str) -> tuple[str, bytes]:
        """(its pending key, its digest): all a call sends per identifier."""
        digest = digest_of(identifier)
        return f"{tag_start}{group_of(digest)}}}:p:{digest.hex()}", digest

    def place(self, scope: LedgerScope, identifier: str) -> Placed:
        start = self.tag_start(scope)
        pending, digest = self.pending(start, identifier)
        base = f"{start}{group_of(digest)}{self.base_end()}"
        return Placed(identifier, digest, base, shard_of(digest), pending)

    def legacy_key(self, scope: LedgerScope, identifier: str) -> str:
        """The key of the key-per-identifier layout before this one."""
        return self.prefix + scope.key(identifier)


def digest_of(identifier: str) -> bytes:
    return hashlib.blake2b(identifier.encode(), digest_size=DIGEST_BYTES).digest()


def group_of(digest: bytes) -> int:
    return digest[6] % GROUPS  # Lua: string.byte(digest, 7) % 64


def shard_of(digest: bytes) -> int:
    return int.from_bytes(digest[:6], "big")  # < 2^53: exact in Lua's numbers


# shard_of in the Lua of the scripts that rebuild a place from a digest.
SHARD_OF_LUA: Final = """
local function shard_of(digest)
  local n = 0
  for i = 1, 6 do n = n * 256 + string.byte(digest, i) end
  return n
end
"""


def bucket_seconds(window_seconds: float) -> int:
    """An eighth of the window (at least a minute): identifiers stay up to that long beyond
    the window, and a claim looks in nine buckets."""
    return max(60, math.ceil(window_seconds / BUCKETS_PER_WINDOW))


def shards_for(events_per_second: float, bucket_seconds: int, groups: int = GROUPS) -> int:
    """Shards per group in a bucket so that a bucket's hashes hold <= FIELDS_PER_HASH fields at
    this rate (a power of two, so a shard number spreads evenly)."""
    per_group = events_per_second * bucket_seconds / groups
    wanted = max(1, math.ceil(per_group / FIELDS_PER_HASH))
    return min(MAX_SHARDS, 1 << (wanted - 1).bit_length())

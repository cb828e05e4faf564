"""A record key's partition, as Kafka's default partitioner chooses it (Java's
``Utils.murmur2``, positive, modulo the partition count): aiokafka's pure-Python murmur2
reads the key a byte at a time, which was 1.7 % of the CPU per request; this reads it four
bytes at a time. A test compares the two on many keys."""

from __future__ import annotations

import struct
from typing import Final

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
_WORDS: dict[int, struct.Struct] = {}  # by word count: little-endian unsigned 32-bit words


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data``, as Kafka's Java client computes it (unsigned 32 bits)."""
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    if words:
        unpack = _WORDS.get(words)
        if unpack is None:
            unpack = _WORDS[words] = struct.Struct(f"<{words}I")
        for word in unpack.unpack_from(data):
            k = (word * _M) & _MASK
            k ^= k >> 24
            h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def key_partition(key: bytes, partitions: list[int]) -> int:
    """The partition of ``partitions`` (sorted) that Kafka's default partitioner gives ``key``."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]

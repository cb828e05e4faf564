"""The key partitioner gives every key the partition Kafka's default partitioner gives it."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner, murmur2

from consumer.kafka.partitions import key_partition
from consumer.kafka.partitions import murmur2 as fast_murmur2


def test_murmur2_matches_aiokafkas_for_every_length_and_tail() -> None:
    """Keys of 0-299 bytes (every tail length, many word counts), random bytes: equal."""
    rng = random.Random(17)
    for length in range(300):
        for _ in range(20):
            key = rng.randbytes(length)
            assert fast_murmur2(key) == murmur2(key), key


def test_key_partition_matches_the_default_partitioner() -> None:
    """Task-id-like keys over 1, 3 and 48 partitions land where aiokafka would put them."""
    partitioner = DefaultPartitioner()
    for count in (1, 3, 48):
        partitions = list(range(count))
        for i in range(2_000):
            key = f"3f0c6d1e-8a7b-4c2d-{i:04x}-1a2b3c4d5e6f".encode()
            assert key_partition(key, partitions) == partitioner(key, partitions, partitions)

"""The plain aiokafka consumer the baselines share: what a hand-written loop would create."""

from __future__ import annotations

import aiokafka


def plain_consumer(bootstrap: str, topic: str, group: str) -> aiokafka.AIOKafkaConsumer:
    """A consumer in its own group reading ``topic`` from the start, committing by hand."""
    return aiokafka.AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )

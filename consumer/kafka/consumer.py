"""The consumer-group member: :class:`RecordSource` fetches, pauses, resumes and commits.

Commits are explicit (auto-commit is off), and a new group starts from the earliest offset,
so records published before the service first ran are answered. The pipeline hears of
rebalances through :class:`RebalanceHandler`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import aiokafka
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from aiokafka.structs import OffsetAndMetadata

from consumer.kafka.connection import KafkaConnection
from consumer.kafka.records import InboundRecord, TopicPartition
from consumer.kafka.startup import classify, stop_quietly


class RebalanceHandler(Protocol):
    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None: ...

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None: ...


def to_inbound(record: Any) -> InboundRecord:
    return InboundRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=tuple(record.headers or ()),
        timestamp_ms=record.timestamp,
    )


class _ListenerAdapter(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    def __init__(self, handler: RebalanceHandler) -> None:
        self._handler = handler

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        await self._handler.on_partitions_revoked({TopicPartition(*tp) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        await self._handler.on_partitions_assigned({TopicPartition(*tp) for tp in assigned})


class RecordSource:
    """A consumer-group member. ``fetch`` must be called often (it is the liveness signal)."""

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        topics: Sequence[str],
        group_id: str,
        max_poll_records: int = 500,
        max_poll_interval_ms: int = 300_000,
        session_timeout_ms: int = 10_000,
        rebalance_timeout_ms: int | None = None,
        group_instance_id: str | None = None,
        heartbeat_interval_ms: int | None = None,
        client_rack: str | None = None,
    ) -> None:
        """``rebalance_timeout_ms``: how long the group waits for this member to rejoin in a
        rebalance, which includes its revoke handler. aiokafka's default is the session
        timeout; a revoke that waits longer gets the member dropped from the group, and its
        revoke-time commit refused. ``group_instance_id``: static membership, so a member
        restarted within the session timeout keeps its partitions without a rebalance.
        ``client_rack``: fetch from the in-sync replica in this rack (KIP-392) where the
        brokers have a rack-aware replica selector."""
        self._topics = tuple(topics)
        self._connection = connection
        self._consumer = aiokafka.AIOKafkaConsumer(
            group_id=group_id,
            group_instance_id=group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            max_poll_interval_ms=max_poll_interval_ms,
            session_timeout_ms=session_timeout_ms,
            rebalance_timeout_ms=rebalance_timeout_ms or session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms or max(1_000, session_timeout_ms // 3),
            # Notice new partitions and late-created topics within 30 s, not aiokafka's 5 min.
            metadata_max_age_ms=30_000,
            # Only when set: not every aiokafka the constraints allow has it (0.14 does).
            **({"client_rack": client_rack} if client_rack else {}),
            **connection.client_options(),
        )

    async def start(self, rebalance: RebalanceHandler) -> None:
        """Connect and subscribe; a refusal raises ConfigurationProblem, consumer closed."""
        try:
            await self._consumer.start()
        except (KafkaError, OSError) as exc:
            await stop_quietly(self._consumer)
            raise classify(exc, self._connection) from None
        self._consumer.subscribe(self._topics, listener=_ListenerAdapter(rebalance))

    async def stop(self) -> None:
        await self._consumer.stop()

    async def fetch(self, timeout_s: float, max_records: int) -> list[InboundRecord]:
        """The next records; an ACL the broker denies (Read on a topic or on the group)
        raises ConfigurationProblem naming it, rather than a traceback."""
        try:
            batches = await self._consumer.getmany(
                timeout_ms=int(timeout_s * 1000), max_records=max_records
            )
        except (GroupAuthorizationFailedError, TopicAuthorizationFailedError) as exc:
            raise classify(exc, self._connection) from None
        return [to_inbound(r) for records in batches.values() for r in records]

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offset to read, per partition."""
        if offsets:
            await self._consumer.commit(
                {
                    aiokafka.TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "")
                    for tp, offset in offsets.items()
                }
            )

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.pause(*(aiokafka.TopicPartition(*tp) for tp in partitions))

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.resume(*(aiokafka.TopicPartition(*tp) for tp in partitions))

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's end offset as of the last fetch (None before the first)."""
        result = self._consumer.highwater(aiokafka.TopicPartition(*tp))
        return int(result) if result is not None else None

    async def committed(self, tp: TopicPartition) -> int | None:
        result = await self._consumer.committed(aiokafka.TopicPartition(*tp))
        return int(result) if result is not None else None

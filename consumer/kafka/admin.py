"""Administration: topics created where allowed, a group's committed offsets, and the broker
probe behind readiness."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from consumer.kafka.connection import KafkaConnection
from consumer.kafka.records import TopicPartition


async def ensure_topics(
    connection: KafkaConnection, topics: Mapping[str, int], replication_factor: int = 3
) -> list[str]:
    """Create the topics that do not exist yet (name -> partitions); return those created.

    The replication factor is capped at the number of brokers, so the same call works on a
    one-broker test cluster and a production one.
    """
    admin = AIOKafkaAdminClient(**connection.client_options())
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        brokers = len((await admin.describe_cluster()).get("brokers", [])) or 1
        wanted = [
            NewTopic(name, partitions, min(replication_factor, brokers))
            for name, partitions in topics.items()
            if name not in existing
        ]
        if not wanted:
            return []
        with contextlib.suppress(TopicAlreadyExistsError):
            response = await admin.create_topics(wanted)
            return _created(response.topic_errors)
        return []
    finally:
        await admin.close()


def _created(topic_errors: list[tuple[Any, ...]]) -> list[str]:
    """The topics the response says were created; raise the first refusal (the broker
    answers a missing Create ACL per topic, not with an error response)."""
    created = []
    for name, error_code, *_ in topic_errors:
        if error_code == 0:
            created.append(name)
        elif error_code != TopicAlreadyExistsError.errno:
            raise for_code(error_code)(f"create topic {name}")
    return created


async def committed_offsets(
    connection: KafkaConnection, group_id: str
) -> dict[TopicPartition, int]:
    """The group's committed offsets (the next offset to read), per partition."""
    admin = AIOKafkaAdminClient(**connection.client_options())
    try:
        await admin.start()
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return {TopicPartition(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


async def broker_reachable(connection: KafkaConnection, timeout_s: float = 5.0) -> bool:
    """True when a broker answers a metadata request."""
    probe = BrokerProbe(connection, timeout_s=timeout_s)
    try:
        return await probe.check()
    finally:
        await probe.close()


class BrokerProbe:
    """Answers "is a broker reachable?" for readiness, on one long-lived admin connection
    (reconnected after a failure), at most one metadata request at a time."""

    def __init__(self, connection: KafkaConnection, *, timeout_s: float = 5.0) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        self._admin: AIOKafkaAdminClient | None = None
        self.reachable = False

    async def check(self) -> bool:
        """A failure on the kept connection (its broker may be the one that died, while the
        others serve) is retried once on a fresh one, through the bootstrap servers, before
        readiness says no broker answers."""
        self.reachable = await self._ask() or await self._ask()
        return self.reachable

    async def _ask(self) -> bool:
        try:
            if self._admin is None:
                self._admin = AIOKafkaAdminClient(
                    request_timeout_ms=int(self._timeout_s * 1000),
                    **self._connection.client_options(),
                )
                await asyncio.wait_for(self._admin.start(), self._timeout_s)
            await asyncio.wait_for(self._admin.describe_cluster(), self._timeout_s)
        except (KafkaError, OSError, TimeoutError):
            await self.close()
            return False
        return True

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

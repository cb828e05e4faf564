"""Back-pressure: partitions paused while their work piles up, resumed below half."""

from __future__ import annotations

from collections.abc import Iterable

from consumer.engine.pipeline.ports import Source
from consumer.kafka.records import TopicPartition
from consumer.observability.metrics import ServiceMetrics


class Backpressure:
    def __init__(
        self,
        source: Source,
        metrics: ServiceMetrics,
        *,
        meter_topic: str | None,
        max_buffered: int,
        max_buffered_meter_events: int,
    ) -> None:
        self._source = source
        self._metrics = metrics
        self._meter_topic = meter_topic
        self._max_buffered = max_buffered
        self._max_buffered_meter_events = max_buffered_meter_events
        self._paused: set[TopicPartition] = set()

    def forget(self, revoked: Iterable[TopicPartition]) -> None:
        """Partitions no longer ours are neither paused nor resumed from here."""
        self._paused -= set(revoked)

    def apply(self, assigned: Iterable[TopicPartition], queued_requests: int, metered: int) -> None:
        """Pause partitions whose work is piling up; resume below half. Requests (per-key
        scheduler) and meter events (batches) have their own bounds, so a usage backlog
        never holds up Conductor's requests, and pausing stays rare for each."""
        full_requests = self._full(queued_requests, self._max_buffered, self._requests_paused)
        full_meter = self._full(metered, self._max_buffered_meter_events, self._meter_paused)
        wanted = {
            tp
            for tp in assigned
            if (full_meter or full_requests if tp.topic == self._meter_topic else full_requests)
        }
        if wanted - self._paused:
            self._source.pause(wanted - self._paused)
        if self._paused - wanted:
            self._source.resume(self._paused - wanted)
        self._paused = wanted
        self._metrics.paused_partitions.set(len(self._paused))

    @property
    def _requests_paused(self) -> bool:
        return any(tp.topic != self._meter_topic for tp in self._paused)

    @property
    def _meter_paused(self) -> bool:
        return any(tp.topic == self._meter_topic for tp in self._paused)

    @staticmethod
    def _full(buffered: int, bound: int, paused: bool) -> bool:
        """Hysteresis: full at the bound; once paused, full until below half of it."""
        return buffered >= bound or (paused and buffered > bound // 2)

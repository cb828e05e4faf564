"""Which offsets may be committed: per partition, the first offset whose reply is not yet
acknowledged (everything below it is answered).

Records finish out of order (different keys run concurrently), so a partition's commit point
only moves past an offset once every earlier fetched offset is done too. A crash at any moment
then redelivers exactly the unfinished records, never skips one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from consumer.kafka.records import TopicPartition


class _PartitionOffsets:
    __slots__ = ("done", "end", "order", "pending", "start")

    def __init__(self, start: int) -> None:
        self.start = start  # the first offset fetched: where the group already stands
        self.order: deque[int] = deque()  # tracked offsets, ascending (fetch order)
        self.pending: set[int] = set()  # tracked and not yet done
        self.done: set[int] = set()  # done but not yet at the head of `order`
        self.end: int | None = None  # highest tracked offset + 1

    def commit_point(self) -> int | None:
        while self.order and self.order[0] in self.done:
            self.done.discard(self.order.popleft())
        if self.order:
            return self.order[0]
        return self.end


class OffsetTracker:
    """Tracks fetched offsets until their replies are acknowledged; answers what to commit."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _PartitionOffsets] = {}
        self._committed: dict[TopicPartition, int] = {}

    def track(self, tp: TopicPartition, offset: int) -> None:
        state = self._partitions.get(tp)
        if state is None:
            state = self._partitions[tp] = _PartitionOffsets(offset)
        if state.end is not None and offset < state.end:
            return  # fetched again (a seek back): already tracked or already done
        state.order.append(offset)
        state.pending.add(offset)
        state.end = offset + 1

    def done(self, tp: TopicPartition, offset: int) -> None:
        """The record's reply is acknowledged. Unknown offsets (revoked partitions) are ignored."""
        state = self._partitions.get(tp)
        if state is None or offset not in state.pending:
            return
        state.pending.discard(offset)
        state.done.add(offset)

    def abandon(self, tp: TopicPartition, offset: int) -> None:
        """The record will not be answered here (withdrawn before it started): no longer
        waited for, and the commit point never passes it, so Kafka redelivers it."""
        state = self._partitions.get(tp)
        if state is not None:
            state.pending.discard(offset)

    def pending(self, partitions: Iterable[TopicPartition] | None = None) -> int:
        """Records tracked and not yet done, in the given partitions (default: all)."""
        chosen = self._partitions if partitions is None else partitions
        return sum(len(self._partitions[tp].pending) for tp in chosen if tp in self._partitions)

    def position(self, tp: TopicPartition) -> int | None:
        """The partition's commit point now (committed or not): the first offset not yet
        answered; None before anything was fetched from it."""
        state = self._partitions.get(tp)
        return state.commit_point() if state is not None else None

    def committable(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Commit points that moved since the last :meth:`mark_committed`."""
        chosen = list(self._partitions if partitions is None else partitions)
        result: dict[TopicPartition, int] = {}
        for tp in chosen:
            state = self._partitions.get(tp)
            if state is None:
                continue
            point = state.commit_point()
            if point is not None and point != self._committed.get(tp, state.start):
                result[tp] = point
        return result

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop partitions we no longer own; late completions for them are ignored."""
        for tp in partitions:
            self._partitions.pop(tp, None)
            self._committed.pop(tp, None)

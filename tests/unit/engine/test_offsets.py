"""The commit rule: commit only below the first unanswered offset, whatever the order in which
records finish."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumer.engine.offsets import OffsetTracker
from consumer.kafka.records import TopicPartition

TP = TopicPartition("stripe.requests", 0)


@given(
    offsets=st.lists(st.integers(0, 10_000), min_size=1, max_size=60, unique=True).map(sorted),
    data=st.data(),
)
def test_commit_point_never_passes_an_unanswered_offset(
    offsets: list[int], data: st.DataObject
) -> None:
    """For any completion order, the commit point is the smallest unfinished offset (or the
    end), so a crash after committing never skips an unanswered record."""
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.track(TP, offset)
    order = data.draw(st.permutations(offsets))
    finished: set[int] = set()
    committed_at = offsets[0]
    for offset in order:
        tracker.done(TP, offset)
        finished.add(offset)
        point = tracker.committable().get(TP)
        unanswered = [o for o in offsets if o not in finished]
        expected = min(unanswered) if unanswered else offsets[-1] + 1
        if point is not None:
            assert point == expected
            tracker.mark_committed({TP: point})
        else:  # nothing new to commit: the point has not moved past the start
            assert expected in (offsets[0], committed_at)
        committed_at = point if point is not None else committed_at
        assert all(o in finished for o in offsets if o < expected)
    assert tracker.pending() == 0


def test_nothing_committable_until_first_offset_is_done() -> None:
    """Later records finishing first do not move the commit point."""
    tracker = OffsetTracker()
    for offset in (5, 6, 7):
        tracker.track(TP, offset)
    tracker.done(TP, 7)
    tracker.done(TP, 6)
    assert tracker.committable() == {}  # 5 is where the group already stands
    tracker.done(TP, 5)
    assert tracker.committable() == {TP: 8}
    tracker.mark_committed({TP: 8})
    assert tracker.committable() == {}


def test_gaps_in_offsets_are_allowed() -> None:
    """Compacted topics and transaction markers leave gaps; the end is last + 1."""
    tracker = OffsetTracker()
    tracker.track(TP, 10)
    tracker.track(TP, 20)
    tracker.done(TP, 10)
    assert tracker.committable() == {TP: 20}
    tracker.done(TP, 20)
    assert tracker.committable() == {TP: 21}


def test_forgotten_partition_ignores_late_completions() -> None:
    """After revoke, a late completion neither crashes nor resurrects the partition."""
    tracker = OffsetTracker()
    tracker.track(TP, 1)
    tracker.forget([TP])
    tracker.done(TP, 1)
    assert tracker.committable() == {}
    assert tracker.pending() == 0


def test_partitions_are_independent() -> None:
    """One slow partition does not hold back another."""
    other = TopicPartition("stripe.requests", 1)
    tracker = OffsetTracker()
    tracker.track(TP, 0)
    tracker.track(other, 0)
    tracker.done(other, 0)
    assert tracker.committable() == {other: 1}
    assert tracker.pending([TP]) == 1
    assert tracker.pending([other]) == 0


def test_refetched_offsets_are_not_tracked_twice() -> None:
    """A re-fetch of an offset already seen does not create a second pending entry."""
    tracker = OffsetTracker()
    tracker.track(TP, 3)
    tracker.track(TP, 3)
    tracker.done(TP, 3)
    assert tracker.pending() == 0
    assert tracker.committable() == {TP: 4}

"""The DLQ tool's logic without Kafka: selection, the summary per reason, what a replay
publishes and when it refuses; and the service carrying the replay count back into the DLQ."""

from __future__ import annotations

import pytest

from consumer.__main__ import main
from consumer.cli.dead_letters import (
    DeadLetterView,
    Selection,
    parse_time,
    plan_replay,
    summarize,
)
from consumer.contract.idempotency import RecordCoordinates
from consumer.engine.replies import dead_letter_record
from consumer.kafka.records import Headers, InboundRecord


def dlq_record(
    offset: int, headers: Headers, *, value: bytes = b"nope", ts_ms: int = 1_700_000_000_000
) -> InboundRecord:
    return InboundRecord("stripe.dlq", 0, offset, b"task-1", value, headers, ts_ms)


def provenance(reason: str, source: str = "stripe.requests", **extra: str) -> Headers:
    base = {
        "dlq.source.topic": source,
        "dlq.source.partition": "2",
        "dlq.source.offset": "41",
        "dlq.reason": reason,
        "dlq.detail": "The record value is not JSON",
        **extra,
    }
    return tuple((k, v.encode()) for k, v in base.items())


def test_replay_publishes_the_record_as_it_arrived_with_its_trail() -> None:
    """Key, value and the producer's own headers go back to the source topic; the DLQ
    provenance is dropped and one `dlq.replayed-from` plus the count are added."""
    record = dlq_record(7, (*provenance("not_json"), ("trace", b"abc")))
    plan = plan_replay(DeadLetterView(record), "stripe.dlq", target=None, max_replays=3)
    assert plan.refusal is None
    assert plan.record is not None
    assert plan.record.topic == "stripe.requests"
    assert (plan.record.key, plan.record.value) == (b"task-1", b"nope")
    assert plan.record.headers == (
        ("trace", b"abc"),
        ("dlq.replayed-from", b"stripe.dlq:0:7"),
        ("dlq.replay-count", b"1"),
    )


def test_second_replay_keeps_the_first_trail_and_counts_two() -> None:
    """A record replayed before carries its earlier `dlq.replayed-from`; the count goes up."""
    headers = (
        *provenance("not_json", **{"dlq.replay-count": "1"}),
        ("dlq.replayed-from", b"stripe.dlq:0:7"),
    )
    plan = plan_replay(
        DeadLetterView(dlq_record(9, headers)), "stripe.dlq", target="other", max_replays=3
    )
    assert plan.record is not None
    assert plan.record.topic == "other"
    assert plan.record.headers == (
        ("dlq.replayed-from", b"stripe.dlq:0:7"),
        ("dlq.replayed-from", b"stripe.dlq:0:9"),
        ("dlq.replay-count", b"2"),
    )


def test_replay_refuses_past_the_limit_truncated_values_and_unknown_sources() -> None:
    """The count limit, a cut value and a record with no source topic are refused, each
    with its reason."""
    counted = DeadLetterView(dlq_record(1, provenance("refused", **{"dlq.replay-count": "3"})))
    cut = DeadLetterView(dlq_record(2, provenance("not_json", **{"dlq.truncated": "true"})))
    sourceless = DeadLetterView(dlq_record(3, (("dlq.reason", b"not_json"),)))
    refusals = [
        plan_replay(letter, "stripe.dlq", target=None, max_replays=3).refusal
        for letter in (counted, cut, sourceless)
    ]
    assert refusals == [
        "replayed 3 times already (--max-replays 3)",
        "the value was truncated to fit the DLQ",
        "no dlq.source.topic header; name a topic with --to",
    ]
    assert plan_replay(counted, "stripe.dlq", target=None, max_replays=4).record is not None


def test_selection_filters_by_reason_source_time_and_position() -> None:
    """Each filter narrows the records; together they intersect."""
    records = [
        dlq_record(0, provenance("not_json"), ts_ms=1_000_000),
        dlq_record(1, provenance("refused", source="stripe.meter-events"), ts_ms=2_000_000),
        dlq_record(2, provenance("not_json", source="stripe.meter-events"), ts_ms=3_000_000),
    ]

    def offsets(selection: Selection) -> list[int]:
        return [v.record.offset for v in selection.select(records)]

    assert offsets(Selection()) == [0, 1, 2]
    assert offsets(Selection(reasons=frozenset({"not_json"}))) == [0, 2]
    assert offsets(Selection(source_topics=frozenset({"stripe.meter-events"}))) == [1, 2]
    assert offsets(Selection(since=2_000, until=3_000)) == [1]
    assert offsets(Selection(positions=frozenset({"0:2"}), reasons=frozenset({"not_json"}))) == [2]


def test_summary_counts_each_reason_with_oldest_and_newest() -> None:
    """`list` shows count, oldest and newest per reason, the largest first."""
    letters = [
        DeadLetterView(dlq_record(0, provenance("refused"), ts_ms=5_000)),
        DeadLetterView(dlq_record(1, provenance("not_json"), ts_ms=1_000)),
        DeadLetterView(dlq_record(2, provenance("not_json"), ts_ms=9_000)),
    ]
    [first, second] = summarize(letters)
    assert (first.reason, first.count, first.oldest_ms, first.newest_ms) == (
        "not_json",
        2,
        1_000,
        9_000,
    )
    assert (second.reason, second.count) == ("refused", 1)


def test_show_decodes_the_error_the_value_has_today() -> None:
    """`show` names the decoder's reason, or the JSON path of the field at fault."""
    not_json = DeadLetterView(dlq_record(0, provenance("not_json")))
    invalid = DeadLetterView(
        dlq_record(1, provenance("rejected"), value=b'{"operation": "create_charge"}')
    )
    assert not_json.decoded_error().startswith("not_json: The record value is not JSON")
    assert invalid.decoded_error().startswith("validation_error at $")
    assert "amount" in invalid.decoded_error()


def test_times_are_read_as_iso_or_as_an_age() -> None:
    """`--since 2h` is two hours before now; ISO times without a zone are UTC."""
    assert parse_time("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_time("1970-01-01T01:00:00") == 3600.0
    assert parse_time("1970-01-01T01:00:00+01:00") == 0.0


def test_a_replayed_record_that_fails_again_carries_its_count_into_the_dlq() -> None:
    """The service's DLQ record keeps the replay count and trail of the inbound record and
    replaces any earlier visit's provenance rather than duplicating it."""
    inbound = InboundRecord(
        "stripe.requests",
        1,
        88,
        b"task-1",
        b"nope",
        (
            ("trace", b"abc"),
            ("dlq.reason", b"stale"),
            ("dlq.replayed-from", b"stripe.dlq:0:7"),
            ("dlq.replay-count", b"2"),
        ),
        0,
    )
    record = dead_letter_record(
        "stripe.dlq",
        inbound,
        RecordCoordinates("stripe.requests", 1, 88),
        reason="not_json",
        detail="The record value is not JSON",
    )
    names = [name for name, _ in record.headers]
    assert names.count("dlq.reason") == 1
    assert names.count("dlq.replay-count") == 1
    headers = dict(record.headers)
    assert headers["dlq.reason"] == b"not_json"
    assert headers["dlq.replay-count"] == b"2"
    assert headers["dlq.replayed-from"] == b"stripe.dlq:0:7"
    assert headers["dlq.source.offset"] == b"88"
    assert headers["trace"] == b"abc"


def test_a_first_visit_has_no_replay_count_header() -> None:
    """A record never replayed gets no `dlq.replay-count` (absent means zero)."""
    inbound = InboundRecord("stripe.requests", 0, 1, None, b"x", (), 0)
    record = dead_letter_record(
        "stripe.dlq", inbound, RecordCoordinates("stripe.requests", 0, 1), reason="r", detail="d"
    )
    assert "dlq.replay-count" not in dict(record.headers)


def test_bad_time_filter_is_a_usage_error_before_kafka_is_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--since yesterday` exits 2 naming the problem; no broker is contacted (none runs
    at the address given)."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["dlq", "list", "--since", "yesterday"]) == 2
    assert "dlq: Invalid isoformat string: 'yesterday'" in capsys.readouterr().err


def test_max_replays_below_one_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """`CONSUMER_DLQ_MAX_REPLAYS=0` (or not a number) is refused: exit 2."""
    from consumer.cli.dlq import _max_replays

    monkeypatch.setenv("CONSUMER_DLQ_MAX_REPLAYS", "0")
    assert _max_replays(None) is None
    monkeypatch.setenv("CONSUMER_DLQ_MAX_REPLAYS", "five")
    assert _max_replays(None) is None
    assert _max_replays(2) == 2
    monkeypatch.delenv("CONSUMER_DLQ_MAX_REPLAYS")
    assert _max_replays(None) == 3

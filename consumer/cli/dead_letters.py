"""What ``python -m consumer dlq`` knows of dead letters, without Kafka: a DLQ record's
provenance (:class:`DeadLetterView`), the filters, the summary per reason, and what a replay
publishes (:func:`plan_replay`): the record as it arrived, its replay trail and count."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from consumer.cli.durations import parse_duration
from consumer.contract import dead_letters as headers
from consumer.contract.codec import DeadLetter, InvalidRequest, RequestDecoder
from consumer.kafka.records import InboundRecord, OutboundRecord

_DECODER: Final = RequestDecoder(max_record_bytes=1 << 30)


def parse_time(text: str, now: float | None = None) -> float:
    """Unix seconds from ISO 8601 (``2026-12-01T10:00:00Z``; UTC when no zone is given) or a
    time ago (``30m``, ``2h``, ``7d``); ValueError otherwise."""
    ago = parse_duration(text)
    if ago is not None:
        return (time.time() if now is None else now) - ago
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """One DLQ record and what its headers say."""

    record: InboundRecord

    def header(self, name: str) -> str | None:
        found = [value for key, value in self.record.headers if key == name]
        return found[-1].decode("utf-8", "replace") if found else None

    @property
    def position(self) -> str:
        """``partition:offset`` in the DLQ, how ``show`` and ``replay`` name a record."""
        return f"{self.record.partition}:{self.record.offset}"

    @property
    def reason(self) -> str:
        return self.header(headers.REASON) or "(none)"

    @property
    def source_topic(self) -> str | None:
        return self.header(headers.SOURCE_TOPIC)

    @property
    def replay_count(self) -> int:
        return headers.replay_count(self.record.headers)

    @property
    def truncated(self) -> bool:
        return self.header(headers.TRUNCATED) == "true"

    def provenance(self) -> list[tuple[str, str]]:
        return [
            (k, v.decode("utf-8", "replace"))
            for k, v in self.record.headers
            if k.startswith(headers.PREFIX)
        ]

    def decoded_error(self) -> str:
        """What the decoder says of the value today: the dead-letter reason or the field at
        fault; a value that decodes now failed for another reason (``dlq.detail``)."""
        decoded = _DECODER.decode(self.record.value, time.time())
        if isinstance(decoded, DeadLetter):
            return f"{decoded.reason}: {decoded.detail}"
        if isinstance(decoded, InvalidRequest):
            error = decoded.error.detail
            return f"validation_error at {error.param}: {error.message}"
        return f"decodes as a valid {decoded.request.operation} request; it failed in processing"


@dataclass(frozen=True, slots=True)
class Selection:
    """Which DLQ records a command is about; an empty field selects everything."""

    positions: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    source_topics: frozenset[str] = frozenset()
    since: float | None = None  # Unix seconds, by the DLQ record's timestamp
    until: float | None = None

    def matches(self, letter: DeadLetterView) -> bool:
        seconds = letter.record.timestamp_ms / 1000
        return (
            (not self.positions or letter.position in self.positions)
            and (not self.reasons or letter.reason in self.reasons)
            and (not self.source_topics or letter.source_topic in self.source_topics)
            and (self.since is None or seconds >= self.since)
            and (self.until is None or seconds < self.until)
        )

    def select(self, records: Iterable[InboundRecord]) -> list[DeadLetterView]:
        letters = (DeadLetterView(r) for r in records)
        chosen = [letter for letter in letters if self.matches(letter)]
        return sorted(chosen, key=lambda v: (v.record.timestamp_ms, v.record.partition))


@dataclass(frozen=True, slots=True)
class ReasonSummary:
    reason: str
    count: int
    oldest_ms: int
    newest_ms: int
    source_topics: tuple[str, ...]


def summarize(letters: Sequence[DeadLetterView]) -> list[ReasonSummary]:
    """Count, oldest and newest per ``dlq.reason``, the largest count first."""
    by_reason: dict[str, list[DeadLetterView]] = {}
    for letter in letters:
        by_reason.setdefault(letter.reason, []).append(letter)
    summaries = [
        ReasonSummary(
            reason,
            len(group),
            min(v.record.timestamp_ms for v in group),
            max(v.record.timestamp_ms for v in group),
            tuple(sorted({v.source_topic or "?" for v in group})),
        )
        for reason, group in by_reason.items()
    ]
    return sorted(summaries, key=lambda s: (-s.count, s.reason))


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """What a replay of one DLQ record publishes, or why it is refused."""

    letter: DeadLetterView
    record: OutboundRecord | None
    refusal: str | None = None


def plan_replay(
    letter: DeadLetterView, dlq_topic: str, *, target: str | None, max_replays: int
) -> ReplayPlan:
    """The record as it arrived (key, value, its own headers, the earlier replay trail), to
    its source topic or ``target``, with one more ``dlq.replayed-from`` and the new count."""
    topic = target or letter.source_topic
    if topic is None:
        return ReplayPlan(letter, None, "no dlq.source.topic header; name a topic with --to")
    if letter.truncated:
        return ReplayPlan(letter, None, "the value was truncated to fit the DLQ")
    if letter.replay_count >= max_replays:
        return ReplayPlan(
            letter,
            None,
            f"replayed {letter.replay_count} times already (--max-replays {max_replays})",
        )
    record = letter.record
    kept = tuple(h for h in record.headers if headers.is_history(h[0]))
    trail = (
        (headers.REPLAYED_FROM, f"{dlq_topic}:{record.partition}:{record.offset}".encode()),
        (headers.REPLAY_COUNT, str(letter.replay_count + 1).encode()),
    )
    return ReplayPlan(letter, OutboundRecord(topic, record.key, record.value or b"", kept + trail))

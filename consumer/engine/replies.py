"""What happened to a request (:class:`Outcome`) and the records that say so.

An outcome becomes one reply record (to the request's reply topic) and, for records that are
not JSON objects, a dead-letter record holding the original value unchanged.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from consumer.contract import dead_letters
from consumer.contract.codec import encode_reply
from consumer.contract.errors import ServiceError
from consumer.contract.idempotency import RecordCoordinates, key_text
from consumer.contract.reply import Reply, ReplyError, ReplyStatus
from consumer.contract.requests import ConductorFields
from consumer.kafka.records import Headers, InboundRecord, OutboundRecord
from consumer.stripe.retry import Attempts

TERMINAL_STATUSES: Final = frozenset({"COMPLETED", "FAILED_WITH_TERMINAL_ERROR"})


class Outcome(msgspec.Struct, frozen=True):
    """The result of one request: the Stripe object, or why there is none."""

    status: ReplyStatus
    output: msgspec.Raw | None = None
    error: ReplyError | None = None
    stripe_request_id: str | None = None
    attempts: int = 0
    deduplicated: bool = False
    stripe_seconds: float = 0.0  # time spent waiting on Stripe (not part of the reply)

    @classmethod
    def completed(cls, body: msgspec.Raw, request_id: str | None, attempts: Attempts) -> Outcome:
        return cls(
            "COMPLETED",
            output=body,
            stripe_request_id=request_id,
            attempts=attempts.count,
            stripe_seconds=attempts.stripe_seconds,
        )

    @classmethod
    def failed(cls, failure: ServiceError, attempts: Attempts | None = None) -> Outcome:
        return cls(
            failure.status,
            error=failure.detail,
            stripe_request_id=failure.detail.request_id,
            attempts=attempts.count if attempts else 0,
            stripe_seconds=attempts.stripe_seconds if attempts else 0.0,
        )

    @property
    def terminal(self) -> bool:
        """Retrying cannot change it: safe to answer again from memory."""
        return self.status in TERMINAL_STATUSES

    @property
    def reason(self) -> str | None:
        return self.error.reason if self.error is not None else None

    def remembered(self) -> Outcome:
        """The same outcome, marked as answered from memory (no Stripe call this time)."""
        return msgspec.structs.replace(self, deduplicated=True, attempts=0, stripe_seconds=0.0)


class ReplyAddress(msgspec.Struct, frozen=True):
    """Where a reply goes and what it echoes."""

    topic: str
    record_key: bytes | None
    conductor: ConductorFields
    passthrough: dict[str, Any]


def reply_record(
    address: ReplyAddress, operation: str | None, outcome: Outcome, idempotency_key: str | None
) -> OutboundRecord:
    """The reply record. `taskId` falls back to the record key, as the contract says."""
    echo = address.conductor.conductor_fields()
    if echo.get("taskId") is None:
        fallback = key_text(address.record_key)
        if fallback is not None:
            echo["taskId"] = fallback
    reply = Reply(
        **echo,
        operation=operation,
        status=outcome.status,
        output=outcome.output,
        error=outcome.error,
        reasonForIncompletion=outcome.reason,
        idempotency_key=idempotency_key,
        deduplicated=outcome.deduplicated,
        attempts=outcome.attempts,
    )
    return OutboundRecord(
        topic=address.topic,
        key=address.record_key,
        value=encode_reply(reply, address.passthrough),
    )


def dead_letter_record(
    dlq_topic: str,
    record: InboundRecord,
    coordinates: RecordCoordinates,
    *,
    reason: str,
    detail: str,
) -> OutboundRecord:
    """The record as it arrived (key, value, headers), plus headers saying where and why.

    A replayed record (``python -m consumer dlq replay``) that fails again keeps its replay
    count and trail (``dlq.replayed-from``), so the next replay can refuse it past a limit;
    any other ``dlq.`` header it arrived with is an earlier visit's, replaced by this one's.
    """
    provenance: Headers = (
        (dead_letters.SOURCE_TOPIC, coordinates.topic.encode()),
        (dead_letters.SOURCE_PARTITION, str(coordinates.partition).encode()),
        (dead_letters.SOURCE_OFFSET, str(coordinates.offset).encode()),
        (dead_letters.REASON, reason.encode()),
        (dead_letters.DETAIL, detail.encode("utf-8", "replace")[:1000]),
    )
    count = dead_letters.replay_count(record.headers)
    if count:
        provenance += ((dead_letters.REPLAY_COUNT, str(count).encode()),)
    carried = tuple(h for h in record.headers if dead_letters.is_history(h[0]))
    return OutboundRecord(
        topic=dlq_topic,
        key=record.key,
        value=record.value or b"",
        headers=provenance + carried,
    )

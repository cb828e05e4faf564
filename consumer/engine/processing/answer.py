"""The last stage: what a record's outcome delivers (:class:`Handled`): the reply when one is
due; a failure with no reply to carry it, a rejection nobody asked a reply for, or a record
that is not JSON at all goes to the dead-letter topic. A failure always reaches someone."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from consumer.contract.errors import RequestRejected, ServiceError
from consumer.contract.idempotency import RecordCoordinates
from consumer.contract.reply import ReplyError, ReplyStatus
from consumer.contract.requests import ConductorFields
from consumer.engine.processing.prepare import Prepared, RequestRouter
from consumer.engine.replies import Outcome, ReplyAddress, dead_letter_record, reply_record
from consumer.engine.reply_memory import MemorySlot
from consumer.kafka.records import InboundRecord, OutboundRecord
from consumer.settings import Settings

INTERNAL_ERROR: Final = "internal_error"
REJECTED: Final = "rejected"  # DLQ reason: invalid, and no reply to say so
REFUSED: Final = "refused"  # DLQ reason: Stripe refused it for good, and no reply to say so


class Handled(msgspec.Struct, frozen=True):
    """What processing one record produced: its outcome and the records to deliver."""

    coordinates: RecordCoordinates
    operation: str | None
    outcome: Outcome
    conductor: ConductorFields = msgspec.field(default_factory=ConductorFields)
    idempotency_key: str | None = None
    reply: OutboundRecord | None = None  # None when no reply is due (quiet meter events)
    dead_letter: OutboundRecord | None = None
    dead_letter_reason: str | None = None
    address: ReplyAddress | None = None
    # Where a failure reply is remembered by taskId as it is sent (the request's memory
    # slot); None for a record that is no request (not JSON, invalid): its copy is refused
    # again the same way by the same codec.
    memory: MemorySlot | None = None
    meter_error: OutboundRecord | None = None  # a meter event that did not count

    @property
    def status(self) -> ReplyStatus:
        return self.outcome.status

    def undeliverable_outcome(self, why: str) -> Outcome:
        """The failure that replaces a reply that cannot be delivered."""
        failure = ServiceError(
            ReplyError(
                type="reply_undeliverable", message=f"The reply could not be delivered: {why}"
            )
        )
        return msgspec.structs.replace(Outcome.failed(failure), attempts=self.outcome.attempts)

    def undeliverable(self, default_topic: str, outcome: Outcome) -> OutboundRecord:
        """A small terminal reply on the default topic, when the real one cannot be delivered
        (its topic refuses it, or it is larger than the broker accepts)."""
        address = self.address or ReplyAddress(default_topic, None, self.conductor, {})
        return reply_record(
            ReplyAddress(default_topic, address.record_key, address.conductor, {}),
            self.operation,
            outcome,
            self.idempotency_key,
        )


class Answers:
    """Builds what a record delivers, for each way processing can end."""

    def __init__(self, settings: Settings, router: RequestRouter) -> None:
        self._settings = settings
        self._router = router

    def answer(self, record: InboundRecord, prepared: Prepared, outcome: Outcome) -> Handled:
        """The reply when one is due; a failure with no reply to carry it goes to the DLQ."""
        coordinates = RecordCoordinates(record.topic, record.partition, record.offset)
        request = prepared.request
        address = prepared.address(record)
        key = prepared.idempotency_key
        refused = not prepared.reply_due and outcome.status != "COMPLETED"
        return Handled(
            coordinates=coordinates,
            operation=request.operation,
            outcome=outcome,
            conductor=request,
            idempotency_key=key,
            reply=reply_record(address, request.operation, outcome, key)
            if prepared.reply_due
            else None,
            dead_letter=self._kept(record, coordinates, REFUSED, outcome) if refused else None,
            dead_letter_reason=REFUSED if refused else None,
            address=address,
            memory=prepared.memory,
        )

    def rejected(
        self,
        record: InboundRecord,
        coordinates: RecordCoordinates,
        rejection: RequestRejected,
        *,
        operation: str | None,
        conductor: ConductorFields,
        passthrough: dict[str, Any],
        topic: str,
        reply_due: bool,
        memory: MemorySlot | None = None,
    ) -> Handled:
        outcome = Outcome.failed(rejection)
        address = ReplyAddress(topic, record.key, conductor, passthrough)
        return Handled(
            coordinates=coordinates,
            operation=operation,
            outcome=outcome,
            conductor=conductor,
            reply=reply_record(address, operation, outcome, None) if reply_due else None,
            dead_letter=None if reply_due else self._kept(record, coordinates, REJECTED, outcome),
            dead_letter_reason=None if reply_due else REJECTED,
            address=address,
            memory=memory,
        )

    def _kept(
        self, record: InboundRecord, coordinates: RecordCoordinates, reason: str, outcome: Outcome
    ) -> OutboundRecord:
        detail = outcome.reason or outcome.status
        return dead_letter_record(
            self._settings.dlq_topic, record, coordinates, reason=reason, detail=detail
        )

    def dead_letter(
        self, record: InboundRecord, coordinates: RecordCoordinates, reason: str, detail: str
    ) -> Handled:
        rejection = RequestRejected(
            "$", f"{detail}; the record was sent to {self._settings.dlq_topic}"
        )
        outcome = Outcome.failed(rejection)
        conductor = ConductorFields()
        address = ReplyAddress(self._settings.reply_topic, record.key, conductor, {})
        # The reply goes to the record key as taskId: only useful (and only sent) with a key.
        reply_due = record.key is not None and self._router.reply_due(record, conductor, None)
        return Handled(
            coordinates=coordinates,
            operation=None,
            outcome=outcome,
            reply=reply_record(address, None, outcome, None) if reply_due else None,
            dead_letter=dead_letter_record(
                self._settings.dlq_topic, record, coordinates, reason=reason, detail=detail
            ),
            dead_letter_reason=reason,
            address=address,
        )

    def internal_error(
        self,
        record: InboundRecord,
        coordinates: RecordCoordinates,
        exc: Exception,
        memory: MemorySlot | None = None,
    ) -> Handled:
        failure = ServiceError(
            ReplyError(
                type=INTERNAL_ERROR,
                message=f"The service failed to process the request ({type(exc).__name__}); "
                f"the record was kept in {self._settings.dlq_topic}",
                retryable=True,
            )
        )
        outcome = Outcome.failed(failure)
        address = ReplyAddress(self._settings.reply_topic, record.key, ConductorFields(), {})
        return Handled(
            coordinates=coordinates,
            operation=None,
            outcome=outcome,
            reply=reply_record(address, None, outcome, None) if record.key is not None else None,
            dead_letter=dead_letter_record(
                self._settings.dlq_topic,
                record,
                coordinates,
                reason=INTERNAL_ERROR,
                detail=type(exc).__name__,
            ),
            dead_letter_reason=INTERNAL_ERROR,
            address=address,
            memory=memory,
        )

"""One record in; its outcome and the records that answer it out.

The steps, in order: decode (a dead letter, a rejection naming the field, or a request);
prepare (the meter topic takes meter events only; the reply topic must be allowed; the
integration must be configured; derive the idempotency key, and the identifier of a meter
event); answer from memory when this request was already answered; otherwise call Stripe
(retrying transient failures with the same key) and remember the answer: a completion by
idempotency key, a failure by taskId (engine/reply_memory.py). Meter events go through a
batcher that sends each identifier once (the identifier ledger). While Stripe rejects the
integration's key, a request is not answered but held (:class:`HeldRequest`).

A failure always reaches someone: a reply when one is due, else (a quiet meter event) the
dead-letter topic. Nothing here touches Kafka: the pipeline delivers and commits. ``process``
never raises on input; an unexpected error becomes a `FAILED` reply and a DLQ record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

import msgspec

from consumer.contract.codec import DeadLetter, InvalidRequest, RequestDecoder, ValidRequest
from consumer.contract.errors import RequestRejected, ServiceError, StripeFailure
from consumer.contract.idempotency import (
    MAX_METER_IDENTIFIER_LENGTH,
    RecordCoordinates,
    derive_key,
    key_text,
    request_hash,
)
from consumer.contract.reply import ReplyError, ReplyStatus
from consumer.contract.requests import ConductorFields, CreateMeterEvent, OperationRequest
from consumer.engine.replies import Outcome, ReplyAddress, dead_letter_record, reply_record
from consumer.engine.reply_memory import AnswerKeys, ReplyMemory
from consumer.kafka.records import InboundRecord, OutboundRecord
from consumer.metering.batcher import MeterEventBatcher
from consumer.metering.events import MeterEvent, MeterResult
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.operations import stripe_call
from consumer.settings import Settings, StripeCredential
from consumer.stripe.credential_gate import CredentialHeld
from consumer.stripe.executor import StripeCallExecutor
from consumer.stripe.retry import Attempts

_log = get_logger()
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

    @property
    def status(self) -> ReplyStatus:
        return self.outcome.status

    def undeliverable(self, default_topic: str, why: str) -> OutboundRecord:
        """A small terminal reply on the default topic, when the real one cannot be delivered
        (its topic refuses it, or it is larger than the broker accepts)."""
        address = self.address or ReplyAddress(default_topic, None, self.conductor, {})
        failure = ServiceError(
            ReplyError(
                type="reply_undeliverable", message=f"The reply could not be delivered: {why}"
            )
        )
        outcome = msgspec.structs.replace(Outcome.failed(failure), attempts=self.outcome.attempts)
        return reply_record(
            ReplyAddress(default_topic, address.record_key, address.conductor, {}),
            self.operation,
            outcome,
            self.idempotency_key,
        )


class Prepared(msgspec.Struct, frozen=True):
    """A valid request, routed: where its reply goes, whose key calls Stripe, its keys."""

    request: OperationRequest
    passthrough: dict[str, Any]
    reply_topic: str
    reply_due: bool
    credential: StripeCredential
    idempotency_key: str
    request_hash: str
    meter_identifier: str | None  # for meter events: given, or derived like the key
    task_id: str | None = None  # the request's taskId, else its record key (the reply's)

    def address(self, record: InboundRecord) -> ReplyAddress:
        return ReplyAddress(self.reply_topic, record.key, self.request, self.passthrough)


class PreparedMeterEvent(msgspec.Struct, frozen=True):
    prepared: Prepared
    event: MeterEvent


class HeldRequest(msgspec.Struct, frozen=True):
    """Not answered: Stripe rejects the integration's key, so the request waits (the pipeline
    holds it outside its worker slot; ``answer`` builds its reply if the hold runs out)."""

    prepared: Prepared

    @property
    def integration(self) -> str:
        return self.prepared.credential.integration


class RequestProcessor:
    def __init__(
        self,
        settings: Settings,
        executor: StripeCallExecutor,
        metrics: ServiceMetrics,
        *,
        memory: ReplyMemory,
        meter_events: MeterEventBatcher,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._executor = executor
        self._metrics = metrics
        self._memory = memory
        self._meter_events = meter_events
        self._wall_clock = wall_clock
        self._decoder = RequestDecoder(settings.max_record_bytes)

    async def process(self, record: InboundRecord) -> Handled | HeldRequest:
        coordinates = RecordCoordinates(record.topic, record.partition, record.offset)
        try:
            return await self._process(record, coordinates)
        except Exception as exc:
            _log.exception(
                "unexpected error while processing a record", extra={"record": str(coordinates)}
            )
            return self._internal_error(record, coordinates, exc)

    async def _process(
        self, record: InboundRecord, coordinates: RecordCoordinates
    ) -> Handled | HeldRequest:
        decoded = self._decoder.decode(record.value, self._wall_clock())
        if isinstance(decoded, DeadLetter):
            return self._dead_letter(record, coordinates, decoded.reason, decoded.detail)
        if isinstance(decoded, InvalidRequest):
            return self._rejected(
                record,
                coordinates,
                decoded.error,
                operation=decoded.operation,
                conductor=decoded.conductor,
                passthrough=decoded.passthrough,
                topic=self._allowed_reply_topic(decoded.reply_topic),
                reply_due=self._reply_due(record, decoded.conductor, decoded.reply_topic),
            )
        try:
            prepared = self._prepare(record, coordinates, decoded)
        except RequestRejected as rejection:
            request = decoded.request
            return self._rejected(
                record,
                coordinates,
                rejection,
                operation=request.operation,
                conductor=request,
                passthrough=decoded.passthrough,
                # Its allowed reply topic, as for any rejection; the default topic when the
                # reply topic itself is what was rejected.
                topic=self._allowed_reply_topic(
                    request.reply_topic if isinstance(request.reply_topic, str) else None
                ),
                reply_due=self._reply_due(record, request, request.reply_topic),
            )
        try:
            outcome = await self._outcome(prepared)
        except CredentialHeld:
            return HeldRequest(prepared)
        return self.answer(record, prepared, outcome)

    # -- preparing ------------------------------------------------------------------------

    def _allowed_reply_topic(self, requested: str | None) -> str:
        if requested and self._settings.reply_topic_allowed(requested):
            return requested
        return self._settings.reply_topic

    def _reply_due(
        self, record: InboundRecord, conductor: ConductorFields, reply_topic: object
    ) -> bool:
        """Every request gets a reply, except meter events on the meter topic that asked for
        none (no taskId, no reply_topic) when the service is not configured to reply there."""
        if record.topic != self._settings.meter_topic or self._settings.meter_replies:
            return True
        return isinstance(conductor.taskId, str) or isinstance(reply_topic, str)

    def _prepare(
        self, record: InboundRecord, coordinates: RecordCoordinates, decoded: ValidRequest
    ) -> Prepared:
        """Route the request and derive its keys; RequestRejected when it cannot go on."""
        request = decoded.request
        if record.topic == self._settings.meter_topic and not isinstance(request, CreateMeterEvent):
            raise RequestRejected(
                "$.operation",
                f"Only `create_meter_event` is accepted on {self._settings.meter_topic}; "
                f"send `{request.operation}` to {', '.join(self._settings.request_topics)}",
            )
        topic = self._settings.reply_topic
        if isinstance(request.reply_topic, str):
            if not self._settings.reply_topic_allowed(request.reply_topic):
                raise RequestRejected(
                    "$.reply_topic",
                    f"Reply topic {request.reply_topic!r} is not allowed; expected "
                    f"{self._settings.reply_topic} or {self._settings.reply_topic}.<suffix>",
                )
            topic = request.reply_topic
        credential = self._settings.credentials.get(request.credential_name)
        if credential is None:
            known = ", ".join(sorted(self._settings.credentials))
            raise RequestRejected(
                "$.integration",
                f"Unknown integration {request.credential_name!r}; configured: {known}",
            )
        digest = request_hash(request)
        key = derive_key(request, digest, record.key, coordinates)
        identifier: str | None = None
        if isinstance(request, CreateMeterEvent):
            identifier = (
                request.identifier
                if isinstance(request.identifier, str)
                else derive_key(
                    request, digest, record.key, coordinates, limit=MAX_METER_IDENTIFIER_LENGTH
                )
            )
        return Prepared(
            request=request,
            passthrough=decoded.passthrough,
            reply_topic=topic,
            reply_due=self._reply_due(record, request, request.reply_topic),
            credential=credential,
            idempotency_key=key,
            request_hash=digest,
            meter_identifier=identifier,
            task_id=request.taskId if isinstance(request.taskId, str) else key_text(record.key),
        )

    def prepare_meter_event(self, record: InboundRecord) -> PreparedMeterEvent | None:
        """The meter lane's fast path: a valid, routable meter event ready to batch, or None
        (then the record takes the ordinary path, which answers whatever is wrong with it,
        and turns an unexpected error into a reply and a DLQ record)."""
        try:
            return self._prepare_meter_event(record)
        except Exception:
            return None

    def _prepare_meter_event(self, record: InboundRecord) -> PreparedMeterEvent | None:
        decoded = self._decoder.decode(record.value, self._wall_clock())
        if not isinstance(decoded, ValidRequest) or not isinstance(
            decoded.request, CreateMeterEvent
        ):
            return None
        coordinates = RecordCoordinates(record.topic, record.partition, record.offset)
        try:
            prepared = self._prepare(record, coordinates, decoded)
        except RequestRejected:
            return None
        return PreparedMeterEvent(prepared, _meter_event(decoded.request, prepared))

    # -- outcomes ---------------------------------------------------------------------------

    async def _outcome(self, prepared: Prepared) -> Outcome:
        request = prepared.request
        memory_keys = AnswerKeys.of(
            request.credential_name,
            request.stripe_account if isinstance(request.stripe_account, str) else None,
            prepared.idempotency_key,
            prepared.task_id,
        )
        remembered = await self._memory.recall(memory_keys, prepared.request_hash)
        if remembered is not None:
            self._metrics.deduplicated.labels("reply_memory").inc()
            return remembered.remembered()
        if isinstance(request, CreateMeterEvent):
            event = _meter_event(request, prepared)
            result = await self._meter_events.deliver(event)
            if result.status == "held":
                raise CredentialHeld(prepared.credential.integration)
            outcome = meter_outcome(event, result)
        else:
            outcome = await self._execute(request, prepared.credential, prepared.idempotency_key)
        await self._memory.remember(memory_keys, prepared.request_hash, outcome)
        return outcome

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
        )

    def _rejected(
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
        )

    def _kept(
        self, record: InboundRecord, coordinates: RecordCoordinates, reason: str, outcome: Outcome
    ) -> OutboundRecord:
        detail = outcome.reason or outcome.status
        return dead_letter_record(
            self._settings.dlq_topic, record, coordinates, reason=reason, detail=detail
        )

    def _dead_letter(
        self, record: InboundRecord, coordinates: RecordCoordinates, reason: str, detail: str
    ) -> Handled:
        rejection = RequestRejected(
            "$", f"{detail}; the record was sent to {self._settings.dlq_topic}"
        )
        outcome = Outcome.failed(rejection)
        conductor = ConductorFields()
        address = ReplyAddress(self._settings.reply_topic, record.key, conductor, {})
        # The reply goes to the record key as taskId: only useful (and only sent) with a key.
        reply_due = record.key is not None and self._reply_due(record, conductor, None)
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

    def _internal_error(
        self, record: InboundRecord, coordinates: RecordCoordinates, exc: Exception
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
        )

    # -- Stripe -----------------------------------------------------------------------------

    async def _execute(
        self, request: OperationRequest, credential: StripeCredential, key: str
    ) -> Outcome:
        attempts = Attempts()
        try:
            response = await self._executor.execute(
                stripe_call(request),
                operation=request.operation,
                credential=credential,
                stripe_account=request.stripe_account
                if isinstance(request.stripe_account, str)
                else None,
                idempotency_key=key,
                attempts=attempts,
            )
        except StripeFailure as failure:
            return Outcome.failed(failure, attempts)
        return Outcome.completed(response.body, response.request_id, attempts)


def _meter_event(request: CreateMeterEvent, prepared: Prepared) -> MeterEvent:
    return MeterEvent.from_request(
        request,
        identifier=prepared.meter_identifier or prepared.idempotency_key,
        idempotency_key=prepared.idempotency_key,
        credential=prepared.credential,
    )


def meter_outcome(event: MeterEvent, result: MeterResult, *, with_output: bool = True) -> Outcome:
    """A meter event's result as a reply outcome: counted (now or before) or failed.
    ``with_output=False`` skips building the reply's output (no reply is due)."""
    if result.status == "failed":
        failure = result.failure or StripeFailure(
            ReplyError(type="api_error", message="Stripe refused the meter event"),
            category="api_error",
        )
        return Outcome.failed(failure, Attempts(count=result.attempts))
    return Outcome(
        "COMPLETED",
        output=msgspec.Raw(msgspec.json.encode(event.as_object())) if with_output else None,
        stripe_request_id=result.request_id,
        attempts=result.attempts,
        deduplicated=result.status == "deduplicated",
    )

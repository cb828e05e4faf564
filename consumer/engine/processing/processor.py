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
from collections.abc import Callable, Hashable

import msgspec

from consumer.contract.codec import DeadLetter, InvalidRequest, RequestDecoder, ValidRequest
from consumer.contract.errors import RequestRejected
from consumer.contract.idempotency import RecordCoordinates
from consumer.contract.requests import ConductorFields, CreateMeterEvent, OperationRequest
from consumer.engine.processing.answer import Answers, Handled
from consumer.engine.processing.execute import Execution
from consumer.engine.processing.prepare import (
    Prepared,
    PreparedMeterEvent,
    RequestRouter,
    meter_event,
)
from consumer.engine.replies import Outcome
from consumer.engine.reply_memory import ReplyMemory
from consumer.kafka.records import InboundRecord
from consumer.metering.batcher import MeterEventBatcher
from consumer.metering.verdicts.refusals import MeterVerdicts
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.operations import written_objects
from consumer.settings import Settings
from consumer.stripe.credential_gate import CredentialHeld
from consumer.stripe.executor import StripeCallExecutor

_log = get_logger()


class HeldRequest(msgspec.Struct, frozen=True):
    """Not answered: Stripe rejects the integration's key, so the request waits (the pipeline
    holds it outside its worker slot; ``answer`` builds its reply if the hold runs out)."""

    prepared: Prepared

    @property
    def integration(self) -> str:
        return self.prepared.credential.integration


class RequestProcessor:
    """One record through the stages: decode (the codec), route and prepare, execute (memory,
    then Stripe), answer. Each stage is its own module; this class only sequences them."""

    def __init__(
        self,
        settings: Settings,
        executor: StripeCallExecutor,
        metrics: ServiceMetrics,
        *,
        memory: ReplyMemory,
        meter_events: MeterEventBatcher,
        verdicts: MeterVerdicts | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._wall_clock = wall_clock
        self._decoder = RequestDecoder(settings.max_record_bytes)
        self._verdicts = verdicts
        self._router = RequestRouter(settings, verdicts.catalog if verdicts else None)
        self._execution = Execution(
            executor, metrics, memory=memory, meter_events=meter_events, verdicts=verdicts
        )
        self._answers = Answers(settings, self._router)

    async def process(self, record: InboundRecord) -> Handled | HeldRequest:
        coordinates = RecordCoordinates(record.topic, record.partition, record.offset)
        seen: list[Prepared] = []  # the request, once prepared: its failure is remembered
        try:
            return await self._process(record, coordinates, seen)
        except Exception as exc:
            _log.exception(
                "unexpected error while processing a record", extra={"record": str(coordinates)}
            )
            memory = seen[0].memory if seen else None
            return self._answers.internal_error(record, coordinates, exc, memory)

    async def _process(
        self, record: InboundRecord, coordinates: RecordCoordinates, seen: list[Prepared]
    ) -> Handled | HeldRequest:
        decoded = self._decoder.decode(record.value, self._wall_clock())
        if isinstance(decoded, DeadLetter):
            return self._answers.dead_letter(record, coordinates, decoded.reason, decoded.detail)
        if isinstance(decoded, InvalidRequest):
            handled = self._invalid(record, coordinates, decoded)
            return await self._refused(handled, decoded.error, decoded.conductor)
        try:
            prepared = self._router.prepare(record, coordinates, decoded)
            await self._check_customer(decoded.request)
        except RequestRejected as rejection:
            handled = self._not_routable(record, coordinates, decoded, rejection)
            return await self._refused(handled, rejection, decoded.request)
        seen.append(prepared)
        try:
            outcome = await self._execution.outcome(prepared)
        except CredentialHeld:
            return HeldRequest(prepared)
        return self.answer(record, prepared, outcome)

    async def _check_customer(self, request: OperationRequest) -> None:
        """With known customers on, a meter event for a customer Stripe does not have is
        refused here (RequestRejected), before it is batched."""
        customers = self._verdicts.customers if self._verdicts else None
        if customers is not None and isinstance(request, CreateMeterEvent):
            await customers.check(request)

    async def _refused(
        self, handled: Handled, rejection: RequestRejected, request: ConductorFields
    ) -> Handled:
        """A meter event refused before sending: on stripe.meter-errors too, and `rejected`
        in the ledger (by its identifier, when it has one)."""
        if self._verdicts is None or handled.operation != "create_meter_event":
            return handled
        identifier = getattr(request, "identifier", None)
        identifier = identifier if isinstance(identifier, str) else None
        if identifier is not None:
            await self._verdicts.refused(request, identifier)
        record = self._verdicts.refusal(rejection, request, identifier)
        return msgspec.structs.replace(handled, meter_error=record)

    def answer(self, record: InboundRecord, prepared: Prepared, outcome: Outcome) -> Handled:
        """The reply when one is due; a failure with no reply to carry it goes to the DLQ. A
        meter event that will not count (refused for good, or given up on) is also on
        stripe.meter-errors; one answered with a retryable failure is not: Conductor retries it."""
        handled = self._answers.answer(record, prepared, outcome)
        request, error = prepared.request, outcome.error
        final = handled.dead_letter is not None or outcome.status == "FAILED_WITH_TERMINAL_ERROR"
        if self._verdicts is None or not isinstance(request, CreateMeterEvent) or not final:
            return handled
        if error is None:
            return handled
        identifier = prepared.meter_identifier or prepared.idempotency_key
        meter_error = self._verdicts.failure(request, identifier, error)
        return msgspec.structs.replace(handled, meter_error=meter_error)

    async def remembered(self, record: InboundRecord, prepared: Prepared) -> Handled | None:
        """The answer already given to this request, answered again; None when there is none
        (the meter lane asks before batching an event whose reply is due)."""
        outcome = await self._execution.remembered(prepared)
        return None if outcome is None else self.answer(record, prepared, outcome)

    def _invalid(
        self, record: InboundRecord, coordinates: RecordCoordinates, decoded: InvalidRequest
    ) -> Handled:
        return self._answers.rejected(
            record,
            coordinates,
            decoded.error,
            operation=decoded.operation,
            conductor=decoded.conductor,
            passthrough=decoded.passthrough,
            topic=self._router.allowed_reply_topic(decoded.reply_topic),
            reply_due=self._router.reply_due(record, decoded.conductor, decoded.reply_topic),
        )

    def _not_routable(
        self,
        record: InboundRecord,
        coordinates: RecordCoordinates,
        decoded: ValidRequest,
        rejection: RequestRejected,
    ) -> Handled:
        request = decoded.request
        return self._answers.rejected(
            record,
            coordinates,
            rejection,
            operation=request.operation,
            conductor=request,
            passthrough=decoded.passthrough,
            # Its allowed reply topic, as for any rejection; the default topic when the
            # reply topic itself is what was rejected.
            topic=self._router.allowed_reply_topic(
                request.reply_topic if isinstance(request.reply_topic, str) else None
            ),
            reply_due=self._router.reply_due(record, request, request.reply_topic),
            memory=self._router.memory_slot(record, coordinates, request),
        )

    def written_objects(self, record: InboundRecord) -> tuple[Hashable, ...]:
        """The Stripe objects the record's request writes, as scheduling keys (its integration,
        connected account and object id, as the executor locks them): writes to one object
        wait their turn in the scheduler, without a worker slot. Empty for anything else."""
        request = self._decoder.peek(record.value)
        if request is None:
            return ()
        objects = written_objects(request)
        if not objects:
            return ()
        account = request.stripe_account if isinstance(request.stripe_account, str) else None
        return tuple(("object", request.credential_name, account, oid) for oid in objects)

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
        customers = self._verdicts.customers if self._verdicts else None
        if customers is not None and not customers.known_locally(decoded.request):
            return None  # the ordinary path looks the customer up (and refuses it)
        coordinates = RecordCoordinates(record.topic, record.partition, record.offset)
        try:
            prepared = self._router.prepare(record, coordinates, decoded)
        except RequestRejected:
            return None
        return PreparedMeterEvent(prepared, meter_event(decoded.request, prepared))

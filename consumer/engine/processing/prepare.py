"""The first stage: a decoded request routed and prepared, or rejected naming the field.

Routing: the meter topic takes meter events only; the reply topic must be allowed; the
integration must be configured. Preparing: the idempotency key (and a meter event's
identifier) derived by the contract's rules; whether a reply is due.
"""

from __future__ import annotations

from typing import Any

import msgspec

from consumer.contract.codec import ValidRequest
from consumer.contract.errors import RequestRejected
from consumer.contract.idempotency import (
    MAX_METER_IDENTIFIER_LENGTH,
    RecordCoordinates,
    derive_key,
    key_text,
    request_hash,
)
from consumer.contract.requests import ConductorFields, CreateMeterEvent, OperationRequest
from consumer.engine.replies import ReplyAddress
from consumer.engine.reply_memory import AnswerKeys, MemorySlot
from consumer.kafka.records import InboundRecord
from consumer.metering.events import MeterEvent
from consumer.metering.verdicts.catalog import MeterCatalog
from consumer.settings import Settings, StripeCredential


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

    @property
    def memory(self) -> MemorySlot:
        """Where this request's answers are remembered (reply_memory.py)."""
        return memory_slot(self.request, self.idempotency_key, self.request_hash, self.task_id)


class PreparedMeterEvent(msgspec.Struct, frozen=True):
    """A meter event for the meter lane: prepared like any request, and ready to batch."""

    prepared: Prepared
    event: MeterEvent


class RequestRouter:
    """Where a request goes and whether it may: the settings' rules, applied to one record."""

    def __init__(self, settings: Settings, catalog: MeterCatalog | None = None) -> None:
        self._settings = settings
        self._catalog = catalog  # the active meters: refuse what no meter would count

    def allowed_reply_topic(self, requested: str | None) -> str:
        if requested and self._settings.reply_topic_allowed(requested):
            return requested
        return self._settings.reply_topic

    def reply_due(
        self, record: InboundRecord, conductor: ConductorFields, reply_topic: object
    ) -> bool:
        """Every request gets a reply, except meter events on the meter topic that asked for
        none (no taskId, no reply_topic) when the service is not configured to reply there."""
        if record.topic != self._settings.meter_topic or self._settings.meter_replies:
            return True
        return isinstance(conductor.taskId, str) or isinstance(reply_topic, str)

    def prepare(
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
        digest, key, task_id = _derived(request, record, coordinates)
        identifier: str | None = None
        if isinstance(request, CreateMeterEvent):
            if self._catalog is not None:
                self._catalog.check(request)
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
            reply_due=self.reply_due(record, request, request.reply_topic),
            credential=credential,
            idempotency_key=key,
            request_hash=digest,
            meter_identifier=identifier,
            task_id=task_id,
        )

    def memory_slot(
        self, record: InboundRecord, coordinates: RecordCoordinates, request: OperationRequest
    ) -> MemorySlot:
        """Where a request's answers are remembered, for one refused before it was prepared
        (its failure is remembered like any other: a copy is answered the same)."""
        digest, key, task_id = _derived(request, record, coordinates)
        return memory_slot(request, key, digest, task_id)


def _derived(
    request: OperationRequest, record: InboundRecord, coordinates: RecordCoordinates
) -> tuple[str, str, str | None]:
    """The request's hash, its idempotency key and its taskId (else its record key)."""
    digest = request_hash(request)
    key = derive_key(request, digest, record.key, coordinates)
    task_id = request.taskId if isinstance(request.taskId, str) else key_text(record.key)
    return digest, key, task_id


def memory_slot(
    request: OperationRequest, idempotency_key: str, digest: str, task_id: str | None
) -> MemorySlot:
    account = request.stripe_account if isinstance(request.stripe_account, str) else None
    keys = AnswerKeys.of(request.credential_name, account, idempotency_key, task_id)
    return MemorySlot(keys, digest)


def meter_event(request: CreateMeterEvent, prepared: Prepared) -> MeterEvent:
    """The prepared meter event as the batcher sends it (identifier given or derived)."""
    return MeterEvent.from_request(
        request,
        identifier=prepared.meter_identifier or prepared.idempotency_key,
        idempotency_key=prepared.idempotency_key,
        credential=prepared.credential,
    )

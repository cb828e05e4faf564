"""What the request path tells the verdict path: a meter event refused before sending
(a ``stripe.meter-errors`` record with code ``validation_error`` and the identifier marked
`rejected:validation_error`), one sent that did not count (a record with Stripe's code), and
a meter event cancelled (marked `cancelled`)."""

from __future__ import annotations

import asyncio
import time

import msgspec

from consumer.contract.errors import RequestRejected
from consumer.contract.meter_errors import MeterErrorRecord
from consumer.contract.reply import ReplyError
from consumer.contract.requests import CancelMeterEvent, ConductorFields, CreateMeterEvent
from consumer.kafka.records import OutboundRecord
from consumer.metering.ledgers.protocol import LedgerScope
from consumer.metering.usage import UsageBook
from consumer.metering.verdicts.book import CANCELLED, REJECTED, VerdictBook
from consumer.metering.verdicts.catalog import MeterCatalog
from consumer.metering.verdicts.customers import KnownCustomers
from consumer.observability.logs import get_logger
from consumer.shared_state.redis_client import SharedStateUnavailable

VALIDATION_ERROR = "validation_error"
MARK_PATIENCE_SECONDS = 30.0
_encoder = msgspec.json.Encoder()
_log = get_logger()


class MeterVerdicts:
    def __init__(
        self,
        book: VerdictBook,
        catalog: MeterCatalog,
        *,
        topic: str,
        usage: UsageBook | None = None,
        customers: KnownCustomers | None = None,
    ) -> None:
        self._usage = usage
        self.book = book
        self.catalog = catalog
        self.customers = customers  # None: customers are not looked up before sending
        self._topic = topic

    def refusal(
        self, rejection: RequestRejected, request: ConductorFields, identifier: str | None
    ) -> OutboundRecord:
        """The record for a meter event refused before sending (``request`` is the decoded
        event, or only its Conductor fields when it could not be decoded)."""
        error = rejection.detail
        message = f"{error.param}: {error.message}" if error.param else error.message
        return self._record(request, identifier, VALIDATION_ERROR, message)

    def failure(
        self, request: CreateMeterEvent, identifier: str, error: ReplyError
    ) -> OutboundRecord:
        """The record for a meter event that was sent and did not count: Stripe refused it
        for good, or the service gave up on it (``code``: Stripe's error code, else its
        type; ``identifier``: given or derived)."""
        return self._record(request, identifier, error.code or error.type, error.message)

    def _record(
        self, request: ConductorFields, identifier: str | None, code: str, message: str
    ) -> OutboundRecord:
        event = request if isinstance(request, CreateMeterEvent) else None
        account = event.stripe_account if event and isinstance(event.stripe_account, str) else None
        value = MeterErrorRecord(
            identifier=identifier,
            event_name=event.event_name if event else None,
            code=code,
            message=message,
            error_count=1,
            sample=False,
            meter_id=None,
            stripe_event_id=None,
            integration=event.credential_name if event else "default",
            stripe_account=account,
            reported_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        return OutboundRecord(
            self._topic, identifier.encode() if identifier else None, _encoder.encode(value)
        )

    async def refused(self, request: ConductorFields, identifier: str) -> None:
        if isinstance(request, CreateMeterEvent):
            await self._mark(_scope(request), identifier, f"{REJECTED}:{VALIDATION_ERROR}")

    async def cancelled(self, request: CancelMeterEvent) -> None:
        await self._mark(_scope(request), request.identifier, CANCELLED)
        if self._usage is not None:
            try:  # no longer counted: out of the delivered sums, into `cancelled`
                await self._usage.rejected(_scope(request), [(request.identifier, CANCELLED)])
            except SharedStateUnavailable as exc:
                _log.warning("could not move cancelled usage", extra={"error": str(exc)})

    async def _mark(self, scope: LedgerScope, identifier: str, verdict: str) -> None:
        """Record the verdict, waiting out a Redis blip as meter events do (backing off, up
        to ``MARK_PATIENCE_SECONDS``); then it is logged and the request is answered all the
        same (its record on the topic says it too)."""
        deadline = time.monotonic() + MARK_PATIENCE_SECONDS
        delay = 0.1
        while True:
            try:
                await self.book.mark(scope, [(identifier, verdict)])
            except SharedStateUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    _log.warning(
                        "could not record a meter event's verdict",
                        extra={"verdict": verdict, "error": str(exc)},
                    )
                    return
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
            else:
                return


def _scope(request: CreateMeterEvent | CancelMeterEvent) -> LedgerScope:
    account = request.stripe_account if isinstance(request.stripe_account, str) else None
    return LedgerScope(request.credential_name, account)

"""One path for every Stripe error report, however it arrives (webhook or poller) and however
many replicas see it: claim the event id (only the claimant goes on), fetch the whole event,
publish its records to ``stripe.meter-errors``, mark the named identifiers `rejected` (and
forget them in the identifier ledger: a corrected resend is sent, not deduplicated), count.
A failure before the end releases the claim, so the report is processed again later (the
webhook answers 500 and Stripe redelivers; the poller retries on its next round)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

import msgspec

from consumer.contract.errors import StripeFailure
from consumer.kafka.records import OutboundRecord
from consumer.metering.ledgers.protocol import IdentifierLedger, LedgerScope
from consumer.metering.usage import UsageBook
from consumer.metering.verdicts.book import REJECTED, ReportClaim, VerdictBook
from consumer.metering.verdicts.reports import ErrorReport, decode_report, error_records, rejections
from consumer.observability.logs import get_logger
from consumer.observability.metrics import ServiceMetrics
from consumer.settings import Settings
from consumer.stripe.calls import StripeCall
from consumer.stripe.gateway import StripeGateway
from consumer.stripe.rate_limit import RateLimit

Source = Literal["webhook", "poller"]
Publish = Callable[[OutboundRecord], Awaitable[None]]
_log = get_logger()


class StripeReader:
    """The GETs the verdict path makes, with an integration's key (through the gateway),
    each within the integration's Stripe rate limit when ``limiters`` are given (the
    service's: STRIPE_RATE_LIMIT counts every call the account makes; a 429 slows the
    limiter down as an operation's does)."""

    def __init__(
        self,
        gateway: StripeGateway,
        settings: Settings,
        limiters: Mapping[str, RateLimit] | None = None,
    ) -> None:
        self._gateway = gateway
        self._credentials = settings.credentials
        self._limiters = limiters or {}

    async def get(
        self,
        integration: str,
        path: str,
        params: dict[str, object],
        *,
        context: str | None = None,
    ) -> bytes:
        limiter = self._limiters.get(integration)
        if limiter is not None:
            await limiter.acquire()
        try:
            response = await self._gateway.call(
                StripeCall("GET", path, dict(params)),
                credential=self._credentials[integration],
                stripe_account=None,
                idempotency_key=None,
                stripe_context=context,
            )
        except StripeFailure as failure:
            if limiter is not None and failure.category == "rate_limit_error":
                limiter.slow_down()
            raise
        return bytes(response.body)


class ReportBusy(Exception):
    """Another caller (replica, webhook or poller) is processing this report now."""


class _Meter(msgspec.Struct):
    event_name: str | None = None


class ErrorIntake:
    def __init__(
        self,
        reader: StripeReader,
        publish: Publish,
        book: VerdictBook,
        ledger: IdentifierLedger,
        metrics: ServiceMetrics,
        *,
        topic: str,
        usage: UsageBook | None = None,
    ) -> None:
        self._usage = usage
        self._reader = reader
        self._publish = publish
        self._book = book
        self._ledger = ledger
        self._metrics = metrics
        self._topic = topic
        self._event_names: dict[str, str] = {}  # meter id -> event name

    async def take(
        self, event_id: str, integration: str, source: Source, context: str | None = None
    ) -> bool:
        """Process the report once; False when it was processed before. ReportBusy when
        another caller holds it now: it may yet fail there, so ask again later (the poller
        keeps its cursor before it, the webhook answers 500 for Stripe to deliver it again).
        ``context``: the thin event's (a connected account's events are fetched in it)."""
        claim = await self._book.claim_report(event_id)
        if claim is ReportClaim.BUSY:
            raise ReportBusy(event_id)
        if claim is ReportClaim.DONE:
            self._metrics.meter_error_reports.labels(source, "duplicate").inc()
            return False
        try:
            path = f"/v2/core/events/{event_id}"
            body = await self._reader.get(integration, path, {}, context=context)
            report = decode_report(body)
            await self._apply(report, integration)
        except BaseException:
            await self._book.release_report(event_id)
            raise
        await self._book.finish_report(event_id)
        self._metrics.meter_error_reports.labels(source, "processed").inc()
        return True

    async def _apply(self, report: ErrorReport, integration: str) -> None:
        meter_id = report.related_object.id if report.related_object else None
        if meter_id and meter_id not in self._event_names:
            meter = msgspec.json.decode(
                await self._reader.get(integration, f"/v1/billing/meters/{meter_id}", {}),
                type=_Meter,
            )
            if meter.event_name:
                self._event_names[meter_id] = meter.event_name
        records = error_records(
            report, integration=integration, event_names=self._event_names, topic=self._topic
        )
        await asyncio.gather(*(self._publish(record) for record in records))
        named = rejections(report)
        scope = LedgerScope(integration, report.context)
        await self._book.mark(scope, [(i, f"{REJECTED}:{code}") for i, code in named])
        await self._ledger.forget(scope, [i for i, _ in named])
        if self._usage is not None:
            await self._usage.rejected(scope, named)
        for error in report.data.reason.error_types:
            self._metrics.meter_errors.labels(error.code).inc(error.error_count)
        _log.info(
            "meter error report processed",
            extra={"stripe_event_id": report.id, "records": len(records), "meter_id": meter_id},
        )


async def ledger_states(
    ledger: IdentifierLedger,
    book: VerdictBook,
    scope: LedgerScope,
    identifiers: Sequence[str],
) -> list[str | None]:
    """Each identifier's state: `cancelled`, `delivered` (a resend after a rejection is
    delivered again), `rejected:<code>`, or None (unknown to the ledger)."""
    verdicts = await book.verdicts(scope, identifiers)
    delivered = await ledger.delivered(scope, identifiers)
    states: list[str | None] = []
    for verdict, sent in zip(verdicts, delivered, strict=True):
        if verdict == "cancelled" or not sent:
            states.append(verdict)
        else:
            states.append("delivered")
    return states
